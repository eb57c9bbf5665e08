import type { Monitor } from '@pgreplica/monitor';
import { busKeys, REMEDIATION_QUEUE, signJob } from '@pgreplica/protocol';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';
import { clusterConfig, startWorker } from './worker-fixture.js';

const KEYS = { alpha: 'alpha-cluster-bus-key-0123456789', beta: 'beta-cluster-bus-key-9876543210' } as const;

// Two PostgreSQL clusters on one Redis, one monitor and one worker process per
// cluster (each serves one `cluster`), each with its own bus key: a failover
// in one does not touch the other, and neither's jobs run on the other.
describe('several clusters on one Redis', () => {
  let alpha: Sandbox;
  let beta: Sandbox;
  const monitors: Monitor[] = [];
  const workers: RemediationWorker[] = [];
  const bus: Record<'alpha' | 'beta', BusRecorder> = {} as never;
  let redis: Redis;

  const start = async (name: 'alpha' | 'beta', sandbox: Sandbox, redisUrl: string) => {
    const config = clusterConfig(sandbox);
    const overrides = { cluster: name, redis: { url: redisUrl }, failover: config.failover, worker: config.worker };
    monitors.push(await startMonitor(sandbox, overrides, KEYS[name]));
    workers.push(await startWorker(sandbox, { cluster: name, redis: { url: redisUrl } }, KEYS[name]));
    bus[name] = await BusRecorder.start(redisUrl, name, KEYS[name]);
  };

  beforeAll(async () => {
    alpha = await startSandbox({ replicas: 1 });
    beta = await startSandbox({ replicas: 1, redis: false });
    const url = alpha.redis!.url;
    redis = new Redis(url);
    await start('alpha', alpha, url);
    await start('beta', beta, url);
    await eventually(() => monitors.every((m) => m.topology?.nodes.every((n) => n.status === 'healthy') === true), 20_000, 'both clusters healthy');
  });
  afterAll(async () => {
    for (const w of workers) await w.close();
    for (const m of monitors) await m.close();
    for (const b of Object.values(bus)) await b?.close();
    await redis?.quit();
    await beta?.stop();
    await alpha?.stop();
  });

  it('fails over one cluster and leaves the other alone', async () => {
    const betaSince = bus.beta.events.length;
    await alpha.primary.kill();
    const changed = await bus.alpha.waitFor((e) => e.type === 'primary.changed', 30_000, 'alpha primary.changed');
    expect(changed).toMatchObject({ cluster: 'alpha', epoch: 2 });
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const betaEvents = bus.beta.events.slice(betaSince);
    expect(betaEvents.every((e) => e.cluster === 'beta')).toBe(true);
    expect(betaEvents.filter((e) => e.type !== 'snapshot')).toEqual([]);
    expect(await beta.primary.isInRecovery()).toBe(false);
    expect(monitors[1]!.topology).toMatchObject({ cluster: 'beta', epoch: 1, primaryId: 'p1' });
    // Each saw only its own events; one cluster's key does not verify the other's.
    expect(bus.alpha.rejected).toEqual([]);
    expect(bus.beta.rejected).toEqual([]);
    expect(JSON.parse((await redis.get(busKeys('beta').primary))!)).toMatchObject({ epoch: 1, primaryId: 'p1' });
  });

  it("one cluster's worker refuses a job signed for the other, or naming the other", async () => {
    const keys = busKeys('beta');
    const connection = new Redis(alpha.redis!.url, { maxRetriesPerRequest: null });
    const queue = new Queue(REMEDIATION_QUEUE, { connection, prefix: keys.queuePrefix });
    try {
      const promote = { cluster: 'beta', epoch: 1, failedPrimaryId: 'p1', candidateId: 'r1', automatic: false, dryRun: false, detectedAt: new Date().toISOString() };
      const signedByAlpha = await queue.add('promote', signJob('promote', promote, KEYS.alpha), { jobId: 'cross-key', attempts: 1 });
      const otherCluster = await queue.add('promote', signJob('promote', { ...promote, cluster: 'alpha' }, KEYS.beta), { jobId: 'cross-cluster', attempts: 1 });
      await eventually(async () => (await signedByAlpha.getState()) === 'failed' && (await otherCluster.getState()) === 'failed', 15_000, 'both refused');
      expect((await queue.getJob('cross-key'))?.failedReason).toMatch(/bad-signature/);
      expect((await queue.getJob('cross-cluster'))?.failedReason).toMatch(/job for cluster alpha, this worker serves beta/);
    } finally {
      await queue.close();
      connection.disconnect();
    }
    expect(await beta.primary.isInRecovery()).toBe(false);
    expect(await beta.node('r1').isInRecovery()).toBe(true);
  });
});
