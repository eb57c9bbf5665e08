import type { Monitor } from '@pgreplica/monitor';
import { freePort, type Sandbox, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';
import { clusterConfig, startWorker } from './worker-fixture.js';

// A replica that was away while a promotion repointed the others comes back
// following the deposed primary: its WAL receiver stays down while the new
// primary answers. Before the fix nothing repointed it (the monitor reported
// it wal-receiver-down for ever). Played here by pointing r2 at a dead port.
describe('issue 8: a replica whose WAL receiver stays down is repointed to the primary', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let worker: RemediationWorker;
  let bus: BusRecorder;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    const config = clusterConfig(sandbox);
    const overrides = { failover: config.failover, worker: config.worker, monitor: { thresholds: { receiverDownAfterMs: 1_000 } } };
    monitor = await startMonitor(sandbox, overrides);
    worker = await startWorker(sandbox, overrides);
    bus = await BusRecorder.start(sandbox.redis!.url);
    await eventually(() => monitor.topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
  });
  afterAll(async () => {
    await worker?.close();
    await monitor?.close();
    await bus?.close();
    await sandbox?.stop();
  });

  it('the monitor enqueues a repoint and the worker makes it stream from the primary again', async () => {
    const r2 = sandbox.node('r2');
    const nowhere = await freePort();
    // Its own conninfo (passfile, TLS settings) with the port of nothing.
    const [current] = await r2.query<{ c: string }>("SELECT current_setting('primary_conninfo') AS c");
    const deadEnd = current!.c.replace(`port=${sandbox.primary.port}`, `port=${nowhere}`);
    expect(deadEnd).not.toBe(current!.c);
    await r2.query(`ALTER SYSTEM SET primary_conninfo = '${deadEnd.replaceAll("'", "''")}'`);
    await r2.query('SELECT pg_reload_conf()');
    await bus.waitFor((e) => e.type === 'node.status' && e.nodeId === 'r2' && e.reason === 'wal-receiver-down' && e.to === 'unhealthy', 20_000, 'r2 unhealthy: wal-receiver-down');
    await eventually(async () => {
      const rows = await sandbox.primary.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_replication WHERE application_name = 'r2' AND state = 'streaming'");
      return rows[0]!.n === 1;
    }, 30_000, 'r2 streaming from p1 again');
    const [conninfo] = await r2.query<{ c: string }>("SELECT current_setting('primary_conninfo') AS c");
    expect(conninfo!.c).toContain(`port=${sandbox.primary.port}`);
    await eventually(() => monitor.topology?.nodes.find((n) => n.id === 'r2')?.status === 'healthy', 15_000, 'the monitor sees r2 healthy again');
  });
});
