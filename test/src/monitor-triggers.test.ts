import type { Monitor } from '@pgreplica/monitor';
import { busKeys, REMEDIATION_QUEUE } from '@pgreplica/protocol';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';
import { BusRecorder, monitorConfig, startMonitor } from './monitor-fixture.js';
import { TcpProxy } from './tcp-proxy.js';
import { startWorker } from './worker-fixture.js';
import type { RemediationWorker } from '@pgreplica/worker';

// The monitor reaches the primary through a proxy the test controls; the
// replicas stream from it directly. Cutting the proxy is a partition between
// the monitor and a live primary.
describe('monitor: remediation triggers', () => {
  let sandbox: Sandbox;
  let proxy: TcpProxy;
  let monitor: Monitor;
  let bus: BusRecorder;
  let queue: Queue;
  let queueRedis: Redis;
  let worker: RemediationWorker;

  const jobs = async (name: string) =>
    (await queue.getJobs(['waiting', 'delayed', 'active', 'completed', 'failed', 'prioritized', 'waiting-children'])).filter((j) => j.name === name);

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    proxy = await TcpProxy.start(sandbox.primary.port);
    bus = await BusRecorder.start(sandbox.redis!.url);
    const base = monitorConfig(sandbox);
    const nodes = (base.nodes as { id: string; port: number }[]).map((n) => (n.id === 'p1' ? { ...n, port: proxy.port } : n));
    const shared = {
      nodes,
      failover: { policy: 'auto', failoverAfterMs: 1_000 },
      slots: { maxRetainedBytes: 1024 * 1024, inactiveGraceMs: 1_000 },
    };
    monitor = await startMonitor(sandbox, shared);
    // The worker reaches the primary through the same proxy as the monitor.
    worker = await startWorker(sandbox, shared);
    queueRedis = new Redis(sandbox.redis!.url, { maxRetriesPerRequest: null });
    queue = new Queue(REMEDIATION_QUEUE, { connection: queueRedis, prefix: busKeys('main').queuePrefix });
    await eventually(() => monitor.topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
  });
  afterAll(async () => {
    await worker?.close();
    await monitor?.close();
    await queue?.close();
    await queueRedis?.quit();
    await bus?.close();
    await proxy?.close();
    await sandbox?.stop();
  });

  it('enqueues exactly one slot-cleanup for an inactive slot retaining more than the limit', async () => {
    await sandbox.primary.query("SELECT pg_create_physical_replication_slot('abandoned', true)");
    await sandbox.primary.query('CREATE TABLE t_wal AS SELECT g, md5(g::text) AS pad FROM generate_series(1, 40000) g');
    await sandbox.primary.query('SELECT pg_switch_wal()');
    await eventually(async () => (await jobs('slot-cleanup')).length > 0, 15_000, 'slot-cleanup job');
    // Several more rounds: still exactly one job, for that slot only.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const found = await jobs('slot-cleanup');
    expect(found).toHaveLength(1);
    expect(found[0]!.data).toMatchObject({ cluster: 'main', epoch: 1, slotName: 'abandoned', dryRun: false });
    expect(found[0]!.opts.deduplication).toEqual({ id: 'slot-cleanup.main.e1.abandoned' });
    const metrics = await (await fetch(`http://127.0.0.1:${monitor.httpPort}/metrics`)).text();
    expect(metrics).toMatch(/pgreplica_slot_retained_bytes\{slot="r1"\} \d+/);
    expect(metrics).toContain('pgreplica_slot_active{slot="r1"} 1');
    // The worker ran it: the slot is gone, the replicas' slots are not.
    await bus.waitFor((e) => e.type === 'slot.dropped' && e.slotName === 'abandoned', 10_000, 'slot.dropped');
    const left = await sandbox.primary.query<{ slot_name: string }>('SELECT slot_name FROM pg_replication_slots ORDER BY 1');
    expect(left.map((r) => r.slot_name)).toEqual(['r1', 'r2']);
  });

  it('publishes failover.suppressed and enqueues nothing while replicas still stream from a primary only the monitor cannot reach', async () => {
    const since = bus.events.length;
    proxy.cutOff();
    try {
      const event = await bus.waitFor((e) => e.type === 'failover.suppressed', 20_000, 'failover.suppressed', since);
      expect(event).toMatchObject({ failedPrimaryId: 'p1', reason: 'replica-still-streaming' });
      expect(event.type === 'failover.suppressed' && (event.inputs.witnesses as { streamingFromPrimary: boolean }[]).some((w) => w.streamingFromPrimary)).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(await jobs('promote')).toHaveLength(0);
      expect(bus.events.slice(since).filter((e) => e.type === 'failover.suppressed')).toHaveLength(1);
      // Nothing was promoted: the epoch and every replica are as they were.
      expect(bus.events.filter((e) => e.type === 'primary.changed')).toEqual([]);
      expect(await sandbox.node('r1').isInRecovery()).toBe(true);
      expect(await sandbox.node('r2').isInRecovery()).toBe(true);
    } finally {
      proxy.restore();
    }
    await bus.waitFor((e) => e.type === 'node.status' && e.nodeId === 'p1' && e.to === 'healthy', 20_000, 'p1 healthy again', since);
  });

  it('enqueues exactly one promote for a dead primary under the auto policy', async () => {
    await sandbox.primary.kill();
    await eventually(async () => (await jobs('promote')).length > 0, 20_000, 'promote job');
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const found = await jobs('promote');
    expect(found).toHaveLength(1);
    expect(found[0]!.opts.deduplication).toEqual({ id: 'promote.main.e1' });
    expect(found[0]!.data).toMatchObject({ cluster: 'main', epoch: 1, failedPrimaryId: 'p1', automatic: true });
    // The worker, which processed it, promoted one replica.
    await bus.waitFor((e) => e.type === 'primary.changed', 20_000, 'primary.changed');
    // The replicas no longer stream: no suppression for this outage.
    expect(bus.events.filter((e) => e.type === 'failover.suppressed' && e.reason !== 'replica-still-streaming')).toHaveLength(0);
  });
});
