import type { Monitor } from '@pgreplica/monitor';
import { type Sandbox, slotNameOf, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, writeConfig } from './cli-fixture.js';
import { eventually, slotNames } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';
import { clusterConfig, startWorker, workerEnv } from './worker-fixture.js';

const IDS = ['pg-1', 'DB.East', 'db_3'];

// Regression for issue 8: node ids that are not replication slot names
// (upper case, "-" and "."). Failover and switchover repoint replicas through
// each node's own slot (pg_1, db_east, db_3), and slot cleanup knows which
// slot belongs to which reachable replica.
describe('issue 8: node ids that are not slot names', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let worker: RemediationWorker;
  let bus: BusRecorder;
  let config: Record<string, unknown>;
  let primaryId = 'pg-1';

  /** Waits until `replicaId` streams from `fromId` through its own slot. */
  const streamsThroughItsSlot = (replicaId: string, fromId: string) =>
    eventually(
      async () => {
        const rows = await sandbox.node(fromId).query<{ slot_name: string; state: string }>(
          'SELECT s.slot_name, r.state FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid',
        );
        return rows.some((r) => r.slot_name === slotNameOf(replicaId) && r.state === 'streaming');
      },
      30_000,
      `${replicaId} streaming from ${fromId} through slot ${slotNameOf(replicaId)}`,
    );

  beforeAll(async () => {
    sandbox = await startSandbox({ nodeIds: IDS });
    config = clusterConfig(sandbox, { slots: { maxRetainedBytes: 1024 * 1024, inactiveGraceMs: 1_000 } });
    monitor = await startMonitor(sandbox, { failover: config.failover, worker: config.worker, slots: config.slots });
    worker = await startWorker(sandbox, { slots: config.slots });
    bus = await BusRecorder.start(sandbox.redis!.url);
    await eventually(() => monitor.topology?.nodes.length === 3 && monitor.topology.nodes.every((n) => n.status === 'healthy'), 15_000, 'all healthy');
    expect(await slotNames(sandbox.primary)).toEqual(['db_3', 'db_east']);
  });
  afterAll(async () => {
    await worker?.close();
    await monitor?.close();
    await bus?.close();
    await sandbox?.stop();
  });

  it('fails over: the other replica is repointed through its own slot', async () => {
    await sandbox.primary.kill();
    const changed = await bus.waitFor((e) => e.type === 'primary.changed', 30_000, 'primary.changed');
    primaryId = changed.type === 'primary.changed' ? changed.toId : '';
    expect(['DB.East', 'db_3']).toContain(primaryId);
    const other = primaryId === 'DB.East' ? 'db_3' : 'DB.East';
    const finished = await bus.waitFor((e) => e.type === 'failover.finished', 30_000, 'failover.finished');
    expect(finished.type === 'failover.finished' && finished.inputs.repointed).toEqual([{ nodeId: other, streaming: true, detail: 'streaming' }]);
    await streamsThroughItsSlot(other, primaryId);
  });

  it('switches over: the old primary rejoins through its own slot', async () => {
    const from = primaryId;
    const to = from === 'DB.East' ? 'db_3' : 'DB.East';
    const path = writeConfig(sandbox.baseDir, 'cli.json', config);
    const result = await cli(['--config', path, 'switchover', '--to', to, '--max-write-pause-ms', '5000', '--wait', '--json'], workerEnv(sandbox));
    expect(result.err).toBe('');
    expect(JSON.parse(result.out)).toMatchObject({ result: { outcome: 'switched', primaryId: to, oldPrimary: 'rejoined' } });
    primaryId = to;
    await streamsThroughItsSlot(from, to);
    expect(await sandbox.node(from).isInRecovery()).toBe(true);
  });

  it('slot cleanup keeps the slot of a reachable replica that is not streaming, drops the others', async () => {
    const primary = sandbox.node(primaryId);
    const replica = sandbox.node(primaryId === 'DB.East' ? 'db_3' : 'DB.East');
    // The replica stays reachable but stops streaming: its slot goes inactive. The dead pg-1's slot and an abandoned one are inactive too.
    await replica.query("ALTER SYSTEM SET primary_conninfo = ''");
    await replica.query('SELECT pg_reload_conf()');
    await primary.query("SELECT pg_create_physical_replication_slot('pg_1', true), pg_create_physical_replication_slot('abandoned', true)");
    await eventually(async () => (await primary.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_replication_slots WHERE active')).at(0)?.n === 0, 15_000, 'every slot inactive');
    await primary.query('CREATE TABLE wal_filler AS SELECT g, md5(g::text) AS pad FROM generate_series(1, 40000) g');
    await primary.query('SELECT pg_switch_wal()');

    for (const slot of ['pg_1', 'abandoned']) await bus.waitFor((e) => e.type === 'slot.dropped' && e.slotName === slot, 30_000, `slot ${slot} dropped`);
    // The monitor asks about the replica's slot too (inactive, over the limit): the worker keeps it.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(await slotNames(primary)).toEqual([replica.slotName]);
    expect(bus.events.filter((e) => e.type === 'slot.dropped').map((e) => (e.type === 'slot.dropped' ? e.slotName : ''))).not.toContain(replica.slotName);
  });
});
