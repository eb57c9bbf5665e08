import type { Monitor } from '@pgreplica/monitor';
import { busKeys, REMEDIATION_QUEUE } from '@pgreplica/protocol';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';
import { TcpProxy } from './tcp-proxy.js';
import { clusterConfig, startWorker } from './worker-fixture.js';

// Regression for issue 8: the monitor and the worker reach the primary
// through a proxy. A short partition (the replicas' WAL receivers down too,
// so nothing witnesses the primary) makes the monitor enqueue a promotion;
// by the time the worker runs it the primary is back, so it aborts. That
// must not use up the epoch: when the primary then dies for real in the same
// epoch, the failover happens.
describe('issue 8: one aborted promotion does not disable automation for the epoch', () => {
  let sandbox: Sandbox;
  let proxy: TcpProxy;
  let monitor: Monitor;
  let worker: RemediationWorker | undefined;
  let bus: BusRecorder;
  let redis: Redis;
  let queue: Queue;
  let shared: Record<string, unknown>;
  const conninfo = new Map<string, string>();

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    proxy = await TcpProxy.start(sandbox.primary.port);
    bus = await BusRecorder.start(sandbox.redis!.url);
    redis = new Redis(sandbox.redis!.url, { maxRetriesPerRequest: null });
    queue = new Queue(REMEDIATION_QUEUE, { connection: redis, prefix: busKeys('main').queuePrefix });
    const config = clusterConfig(sandbox);
    const nodes = (config.nodes as { id: string; port: number }[]).map((n) => (n.id === 'p1' ? { ...n, port: proxy.port } : n));
    shared = { nodes, failover: config.failover };
    monitor = await startMonitor(sandbox, shared);
    await eventually(() => monitor.topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
  });
  afterAll(async () => {
    await worker?.close();
    await monitor?.close();
    await queue?.close();
    await bus?.close();
    await redis?.quit();
    await proxy?.close();
    await sandbox?.stop();
  });

  /** Stops (empty) or restores the replicas' primary_conninfo: their WAL receivers stop or start. */
  const setReceivers = async (on: boolean) => {
    for (const replica of sandbox.replicas) {
      if (!conninfo.has(replica.id)) conninfo.set(replica.id, (await replica.query<{ c: string }>("SELECT current_setting('primary_conninfo') AS c"))[0]!.c);
      await replica.query(`ALTER SYSTEM SET primary_conninfo = '${on ? conninfo.get(replica.id)!.replaceAll("'", "''") : ''}'`);
      await replica.query('SELECT pg_reload_conf()');
    }
  };

  it('a promotion aborted because the primary came back, then a real death in the same epoch: failover', async () => {
    // The partition: the monitor cannot reach p1 and no replica streams from it. No worker runs yet.
    proxy.cutOff();
    await setReceivers(false);
    try {
      await eventually(async () => (await queue.getJobs(['waiting', 'prioritized'])).some((j) => j.name === 'promote'), 20_000, 'a promote job enqueued');
    } finally {
      proxy.restore();
      await setReceivers(true);
    }
    await sandbox.waitForStreaming();
    await eventually(() => monitor.topology?.nodes.find((n) => n.id === 'p1')?.status === 'healthy', 15_000, 'p1 healthy again');

    // The worker runs the job now: the primary answers, so it aborts and changes nothing.
    worker = await startWorker(sandbox, shared);
    const aborted = await bus.waitFor((e) => e.type === 'failover.aborted', 15_000, 'failover.aborted');
    expect(aborted).toMatchObject({ failedPrimaryId: 'p1', epoch: 1 });
    expect(aborted.type === 'failover.aborted' && aborted.reason).toMatch(/^(primary-reachable|replica-still-streaming)/);
    expect(bus.events.filter((e) => e.type === 'primary.changed')).toEqual([]);
    expect(await sandbox.node('r1').isInRecovery()).toBe(true);
    expect(await sandbox.node('r2').isInRecovery()).toBe(true);

    // Same epoch, the primary dies for real: the monitor triggers again and the worker fails over.
    const since = bus.events.length;
    await sandbox.primary.kill();
    const changed = await bus.waitFor((e) => e.type === 'primary.changed', 30_000, 'primary.changed', since);
    expect(changed).toMatchObject({ fromId: 'p1', epoch: 2 });
    expect(JSON.parse((await redis.get(busKeys('main').primary))!)).toMatchObject({ epoch: 2, primaryId: changed.type === 'primary.changed' ? changed.toId : '' });
    const outcomes = async () => (await queue.getJobs(['completed'])).filter((j) => j.name === 'promote').map((j) => String(j.returnvalue?.result?.outcome));
    await eventually(async () => (await outcomes()).includes('promoted'), 20_000, 'the second promote job completed');
    expect((await outcomes()).sort()).toEqual(['aborted', 'promoted']);
  });
});
