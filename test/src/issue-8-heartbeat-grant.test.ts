import { Monitor } from '@pgreplica/monitor';
import { PGREPLICA_SCHEMA_SQL } from '@pgreplica/probe';
import { busKeys } from '@pgreplica/protocol';
import { createLogger, resolveConfig } from '@pgreplica/runtime';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';
import { BusRecorder, monitorConfig } from './monitor-fixture.js';

const ROLE = 'pgreplica_monitor';
const PASSWORD = 'issue-8-monitor-password';

// Regression for issue 8: the monitor runs as a non-superuser role (member of
// pg_monitor) that may not read pgreplica.heartbeat. A failed read of
// pgreplica's own tables is not a failed probe: every node stays reachable
// and healthy, replica lag comes from the primary's view, and the epoch
// recorded in the databases is still read.
describe('issue 8: a heartbeat-table read error is not "unreachable"', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let bus: BusRecorder;
  let redis: Redis;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    await sandbox.primary.query(`CREATE ROLE ${ROLE} LOGIN PASSWORD '${PASSWORD}' IN ROLE pg_monitor`);
    await sandbox.primary.query(PGREPLICA_SCHEMA_SQL);
    await sandbox.primary.query(`GRANT ALL ON ALL TABLES IN SCHEMA pgreplica TO ${ROLE}`);
    await sandbox.primary.query(`REVOKE SELECT ON pgreplica.heartbeat FROM ${ROLE}`);
    await sandbox.waitForReplay();
    bus = await BusRecorder.start(sandbox.redis!.url);
    redis = new Redis(sandbox.redis!.url);
    const config = resolveConfig(monitorConfig(sandbox, { database: { user: ROLE } }), { PGREPLICA_DB_PASSWORD: PASSWORD });
    monitor = new Monitor(config, createLogger(process.env.PGREPLICA_TEST_LOG ?? 'silent'));
    await monitor.start();
  });
  afterAll(async () => {
    await monitor?.close();
    await bus?.close();
    await redis?.quit();
    await sandbox?.stop();
  });

  it('keeps every node reachable and healthy, with lag from the primary', async () => {
    expect((await sandbox.primary.query<{ ok: boolean }>(`SELECT has_table_privilege('${ROLE}', 'pgreplica.heartbeat', 'SELECT') AS ok`))[0]?.ok).toBe(false);
    await eventually(() => monitor.topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
    // Several seconds of writes on the primary: nobody turns unreachable or unhealthy.
    await sandbox.primary.query('CREATE TABLE t (id int)');
    const until = Date.now() + 4_000;
    for (let i = 0; Date.now() < until; i++) {
      await sandbox.primary.query('INSERT INTO t VALUES ($1)', [i]);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(bus.events.filter((e) => e.type === 'node.status' && e.to !== 'healthy')).toEqual([]);
    const nodes = monitor.topology!.nodes;
    expect(nodes.map((n) => [n.id, n.status])).toEqual([
      ['p1', 'healthy'],
      ['r1', 'healthy'],
      ['r2', 'healthy'],
    ]);
    for (const replica of nodes.filter((n) => n.role === 'replica')) expect(replica.lagMs).toEqual(expect.any(Number));
  });

  it('still reads the epoch the databases record', async () => {
    expect(monitor.topology?.epoch).toBe(1);
    // A later epoch recorded for p1 in its database (as a worker does before it announces one): the bus follows it.
    await sandbox.primary.query(
      "INSERT INTO pgreplica.epoch (epoch, primary_id, system_identifier, cause, at) SELECT 5, 'p1', system_identifier::text, 'manual', now() FROM pg_control_system()",
    );
    await eventually(async () => JSON.parse((await redis.get(busKeys('main').primary)) ?? '{}').epoch === 5, 10_000, 'the bus record at epoch 5');
    expect(monitor.topology?.nodes.every((n) => n.status === 'healthy')).toBe(true);
  });
});
