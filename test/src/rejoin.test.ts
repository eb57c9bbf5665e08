import type { Monitor } from '@pgreplica/monitor';
import type { BusEventOf } from '@pgreplica/protocol';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';
import { clusterConfig, startWorker } from './worker-fixture.js';

// A failed primary comes back: the worker fences it, then (worker.autoRejoin)
// rejoins it as a replica through the rejoin hook; the writes it had that no
// replica received are reported and kept aside, not silently dropped.
describe('rejoin of a deposed primary', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let worker: RemediationWorker;
  let bus: BusRecorder;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    const config = clusterConfig(sandbox);
    const workerSection = { ...(config.worker as object), autoRejoin: true };
    monitor = await startMonitor(sandbox, { failover: config.failover, worker: workerSection });
    worker = await startWorker(sandbox, { worker: { ...workerSection, stalledIntervalMs: 1_000, lockDurationMs: 3_000 } });
    bus = await BusRecorder.start(sandbox.redis!.url);
    await eventually(() => monitor.topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
    await sandbox.primary.query('CREATE TABLE ledger (id int PRIMARY KEY)');
    await sandbox.waitForReplay();
  });
  afterAll(async () => {
    await worker?.close();
    await monitor?.close();
    await bus?.close();
    await sandbox?.stop();
  });

  it('kill -9, failover, restart: the old primary streams from the new one, its lost tail reported', async () => {
    // Writes no replica receives: the replicas are down while the primary takes them.
    for (const r of sandbox.replicas) await r.stop('fast');
    await sandbox.primary.query('INSERT INTO ledger SELECT g FROM generate_series(1, 50) g');
    await sandbox.primary.kill();
    for (const r of sandbox.replicas) await r.start();
    const changed = await bus.waitFor((e) => e.type === 'primary.changed', 60_000, 'primary.changed');
    const newPrimary = changed.type === 'primary.changed' ? changed.toId : '';

    await sandbox.primary.start();
    const rejoined = await bus.waitFor<BusEventOf<'node.rejoined'>>((e) => e.type === 'node.rejoined' && e.nodeId === 'p1', 90_000, 'p1 rejoined');
    expect(rejoined).toMatchObject({ nodeId: 'p1', primaryId: newPrimary, method: 'rewind' });
    expect(rejoined.lostTail).not.toBeNull();
    expect(rejoined.lostTail!.records['Heap/INSERT']).toBeGreaterThanOrEqual(50);
    process.stderr.write(`[rejoin] lost tail ${rejoined.lostTail!.fromLsn}..${rejoined.lostTail!.toLsn} (${rejoined.lostTail!.bytes} bytes) kept in ${rejoined.lostTail!.savedTo}\n`);
    // It was fenced first (it came back writable with the old epoch), then rejoined.
    expect(bus.statusOf('p1').some((s) => s.reason === 'fenced' || s.reason === 'stale-primary')).toBe(true);
    expect(await sandbox.primary.isInRecovery()).toBe(true);
    await eventually(async () => {
      const rows = await sandbox.node(newPrimary).query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_replication WHERE application_name = 'p1' AND state = 'streaming'");
      return rows[0]!.n === 1;
    }, 30_000, 'p1 streaming from the new primary');
    // The lost rows are not on the cluster's history, and the node follows it now.
    expect((await sandbox.node(newPrimary).query<{ n: number }>('SELECT count(*)::int AS n FROM ledger'))[0]!.n).toBe(0);
    await sandbox.node(newPrimary).query('INSERT INTO ledger VALUES (1000)');
    await eventually(async () => (await sandbox.primary.query<{ n: number }>('SELECT count(*)::int AS n FROM ledger WHERE id = 1000'))[0]!.n === 1, 15_000, 'p1 replays the new primary');
    await eventually(() => monitor.topology?.nodes.find((n) => n.id === 'p1')?.role === 'replica', 15_000, 'the monitor sees p1 as a replica');
  });
});
