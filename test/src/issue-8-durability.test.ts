import type { Monitor } from '@pgreplica/monitor';
import type { Router } from '@pgreplica/router-client';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';
import { missingOn, routerSees, startRouter, writeLoop } from './router-fixture.js';
import { clusterConfig, startWorker } from './worker-fixture.js';

const primarySyncNames = async (sandbox: Sandbox, nodeId: string) =>
  (await sandbox.node(nodeId).query<{ v: string }>("SELECT current_setting('synchronous_standby_names') AS v"))[0]!.v;

// failover.durability: synchronous — the worker keeps ANY 1 of the streaming
// replicas synchronous, drops dead ones so writes never block, and a failover
// promotes only a node that had every acknowledged commit.
describe('issue 8: synchronous durability', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let worker: RemediationWorker;
  let db: Router;
  let bus: BusRecorder;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    const config = clusterConfig(sandbox, { failover: { policy: 'auto', failoverAfterMs: 1_000, witnessFreshMs: 3_000, durability: 'synchronous' } });
    monitor = await startMonitor(sandbox, { failover: config.failover, worker: config.worker });
    worker = await startWorker(sandbox, { failover: config.failover });
    bus = await BusRecorder.start(sandbox.redis!.url);
    db = await startRouter(sandbox, { maxWritePauseMs: 30_000, pool: { max: 4, query_timeout: 10_000 } });
    await routerSees(db, (r) => r.getTopology().topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
    await db.query('CREATE TABLE ledger (id int PRIMARY KEY)');
  });
  afterAll(async () => {
    await db?.close();
    await worker?.close();
    await monitor?.close();
    await bus?.close();
    await sandbox?.stop();
  });

  it('makes ANY 1 of the streaming replicas synchronous, and drops a dead one so writes do not block', async () => {
    await eventually(async () => (await primarySyncNames(sandbox, 'p1')) === 'ANY 1 ("r1", "r2")', 20_000, 'both replicas synchronous');
    const [sync] = await sandbox.primary.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_replication WHERE sync_state = 'quorum'");
    expect(sync!.n).toBe(2);
    await sandbox.node('r2').stop('immediate');
    await eventually(async () => (await primarySyncNames(sandbox, 'p1')) === 'ANY 1 ("r2")' || (await primarySyncNames(sandbox, 'p1')) === 'ANY 1 ("r1")', 20_000, 'the dead replica dropped');
    expect(await primarySyncNames(sandbox, 'p1')).toBe('ANY 1 ("r1")');
    // Writes go on with r1 acknowledging.
    await db.write('INSERT INTO ledger (id) VALUES (-1)');
    await sandbox.node('r2').start();
    await eventually(async () => (await primarySyncNames(sandbox, 'p1')) === 'ANY 1 ("r1", "r2")', 20_000, 'r2 synchronous again');
  });

  it('fails over to a synchronous standby and loses no acknowledged write', async () => {
    const loop = writeLoop(db, sandbox, 3);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await sandbox.primary.kill();
    const changed = await bus.waitFor((e) => e.type === 'primary.changed', 60_000, 'primary.changed');
    const newPrimary = changed.type === 'primary.changed' ? changed.toId : '';
    await eventually(() => loop.acked.some((a) => a.node === newPrimary), 30_000, 'a write on the new primary');
    await loop.stop();
    const beforeKill = loop.acked.filter((a) => a.node === 'p1').map((a) => a.id);
    process.stderr.write(`[durability synchronous] acknowledged by the old primary ${beforeKill.length}, failed ${loop.failures.length}\n`);
    expect(await missingOn(sandbox, newPrimary, loop.acked.map((a) => a.id))).toEqual([]);
    // The new primary keeps the remaining replica synchronous.
    const other = newPrimary === 'r1' ? 'r2' : 'r1';
    await eventually(async () => (await primarySyncNames(sandbox, newPrimary)) === `ANY 1 ("${other}")`, 30_000, `${other} synchronous for ${newPrimary}`);
  });
});
