import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';

// One shared sandbox: these tests only read, write rows and change a replica's apply delay.
describe('sandbox replication', () => {
  let sandbox: Sandbox;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
  });
  afterAll(async () => {
    await sandbox?.stop();
  });

  it('starts a primary and two replicas in recovery, each on its own loopback port', async () => {
    expect(await sandbox.primary.isInRecovery()).toBe(false);
    for (const replica of sandbox.replicas) expect(await replica.isInRecovery()).toBe(true);
    const ports = new Set(sandbox.nodes.map((n) => n.port));
    expect(ports.size).toBe(3);
    for (const node of sandbox.nodes) {
      expect(node.url).toMatch(new RegExp(`^postgres://postgres:[^@]+@127\\.0\\.0\\.1:${node.port}/postgres$`));
      expect(node.redactedUrl).not.toContain(node.connectionConfig.password as string);
    }
  });

  it('replicates a row written on the primary to both replicas', async () => {
    await sandbox.primary.query('CREATE TABLE t_replicated (id int PRIMARY KEY, note text)');
    await sandbox.primary.query("INSERT INTO t_replicated VALUES (1, 'written on the primary')");
    for (const replica of sandbox.replicas) {
      await eventually(async () => (await replica.query('SELECT 1 FROM t_replicated WHERE id = 1')).length === 1, 10_000, `row on ${replica.id}`);
      const [row] = await replica.query<{ note: string }>('SELECT note FROM t_replicated WHERE id = 1');
      expect(row?.note).toBe('written on the primary');
    }
    await expect(sandbox.replicas[0]!.query('INSERT INTO t_replicated VALUES (2, null)')).rejects.toMatchObject({ code: '25006' });
  });

  it('gives each replica its own physical slot, and each streams through it', async () => {
    const rows = await sandbox.replicationStatus();
    expect(rows.map((r) => r.id)).toEqual(['r1', 'r2']);
    for (const row of rows) {
      expect(row).toMatchObject({ state: 'streaming', slotActive: true, syncState: 'async' });
    }
    for (const replica of sandbox.replicas) {
      const [receiver] = await replica.query<{ status: string; slot_name: string; sender_port: number }>(
        'SELECT status, slot_name, sender_port FROM pg_stat_wal_receiver',
      );
      expect(receiver).toMatchObject({ status: 'streaming', slot_name: replica.id, sender_port: sandbox.primary.port });
    }
  });

  it('authenticates the replication role with scram-sha-256 and gives it REPLICATION only', async () => {
    const [role] = await sandbox.primary.query<{ rolreplication: boolean; rolsuper: boolean; rolcreaterole: boolean; rolcreatedb: boolean; scram: boolean }>(
      `SELECT rolreplication, rolsuper, rolcreaterole, rolcreatedb, rolpassword LIKE 'SCRAM-SHA-256$%' AS scram
         FROM pg_authid WHERE rolname = $1`,
      [sandbox.replicationUser.name],
    );
    expect(role).toEqual({ rolreplication: true, rolsuper: false, rolcreaterole: false, rolcreatedb: false, scram: true });
    const hba = await sandbox.primary.query<{ database: string[]; user_name: string[]; auth_method: string }>(
      "SELECT database, user_name, auth_method FROM pg_hba_file_rules WHERE 'replication' = ANY(database)",
    );
    expect(hba.length).toBeGreaterThan(0);
    for (const rule of hba) expect(rule).toMatchObject({ user_name: [sandbox.replicationUser.name], auth_method: 'scram-sha-256' });
  });

  it('runs with deploy/postgres/replication.conf in effect', async () => {
    const settings = await sandbox.replicas[0]!.query<{ name: string; setting: string; sourcefile: string | null }>(
      `SELECT name, setting, sourcefile FROM pg_settings
        WHERE name IN ('wal_level', 'hot_standby_feedback', 'wal_log_hints', 'recovery_target_timeline')`,
    );
    const byName = Object.fromEntries(settings.map((s) => [s.name, s]));
    expect(byName.wal_level).toMatchObject({ setting: 'replica' });
    expect(byName.wal_log_hints?.setting).toBe('on');
    expect(byName.hot_standby_feedback?.sourcefile).toMatch(/replication\.conf$/);
    expect(byName.recovery_target_timeline).toMatchObject({ setting: 'latest' });
  });

  it('produces measurable, bounded lag with recovery_min_apply_delay', async () => {
    const [delayed, prompt] = sandbox.replicas as [typeof sandbox.replicas[0], typeof sandbox.replicas[0]];
    await delayed!.setApplyDelay(1_500);
    try {
      await sandbox.primary.query('CREATE TABLE t_delay (id int)');
      await sandbox.waitForReplay([prompt!]);
      const started = Date.now();
      await sandbox.primary.query('INSERT INTO t_delay VALUES (1)');
      await sandbox.waitForReplay([prompt!]);
      // The prompt replica has the row at once; the delayed one does not yet…
      expect(await prompt!.query('SELECT 1 FROM t_delay')).toHaveLength(1);
      const [early] = await delayed!.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_class WHERE relname = 't_delay'",
      );
      const lagBytes = (await sandbox.replicationStatus()).find((r) => r.id === delayed!.id)?.replayLagBytes ?? 0;
      expect(early?.n).toBe(0);
      expect(lagBytes).toBeGreaterThan(0);
      // …but it does after the delay, not before.
      await eventually(async () => {
        try {
          return (await delayed!.query('SELECT 1 FROM t_delay')).length === 1;
        } catch {
          return false; // table not replayed yet
        }
      }, 15_000, 'delayed replay');
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    } finally {
      await delayed!.setApplyDelay(0);
    }
  });
});
