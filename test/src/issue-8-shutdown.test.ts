import type { Monitor } from '@pgreplica/monitor';
import { busKeys, REMEDIATION_QUEUE } from '@pgreplica/protocol';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';
import { clusterConfig, startWorker } from './worker-fixture.js';

// Regression for issue 8: a worker asked to shut down in the middle of a
// promotion (here: in a fence hook that would take 30 s) stops the job at a
// safe point at once, changes nothing half-way, and the job goes back to the
// queue, where another worker finishes it.
describe('issue 8: shutdown reaches the running job', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let bus: BusRecorder;
  let redis: Redis;
  let queue: Queue;
  const workers: RemediationWorker[] = [];

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    bus = await BusRecorder.start(sandbox.redis!.url);
    redis = new Redis(sandbox.redis!.url, { maxRetriesPerRequest: null });
    queue = new Queue(REMEDIATION_QUEUE, { connection: redis, prefix: busKeys('main').queuePrefix });
  });
  afterAll(async () => {
    for (const w of workers) await w.close();
    await monitor?.close();
    await queue?.close();
    await bus?.close();
    await redis?.quit();
    await sandbox?.stop();
  });

  it('close() returns long before the fence hook would end; the job resumes on another worker', async () => {
    const hooks = (clusterConfig(sandbox).worker as { hooks: Record<string, string> }).hooks;
    const config = clusterConfig(sandbox);
    monitor = await startMonitor(sandbox, { failover: config.failover, worker: config.worker });
    await eventually(() => monitor.topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
    const slow = await startWorker(sandbox, { worker: { http: { port: 0 }, hooks: { ...hooks, fence: 'sleep 30' } } });
    workers.push(slow);

    await sandbox.primary.kill();
    const started = await bus.waitFor((e) => e.type === 'failover.started', 20_000, 'failover.started');
    await new Promise((resolve) => setTimeout(resolve, 500)); // well inside the 30 s hook
    const closeStarted = Date.now();
    await slow.close();
    const closeMs = Date.now() - closeStarted;
    process.stderr.write(`[shutdown] close() during a 30 s fence hook took ${closeMs} ms\n`);
    expect(closeMs).toBeLessThan(10_000);

    // Nothing half-done: no promotion recorded or made, the epoch unchanged, the job waiting for a worker.
    expect(await redis.get(busKeys('main').promotion(1))).toBeNull();
    expect(await sandbox.node('r1').isInRecovery()).toBe(true);
    expect(await sandbox.node('r2').isInRecovery()).toBe(true);
    expect(JSON.parse((await redis.get(busKeys('main').primary))!)).toMatchObject({ epoch: 1, primaryId: 'p1' });
    expect(bus.events.filter((e) => e.type === 'failover.aborted' || e.type === 'primary.changed')).toEqual([]);
    const pending = (await queue.getJobs(['waiting', 'delayed', 'prioritized'])).filter((j) => j.name === 'promote');
    expect(pending).toHaveLength(1);
    const jobId = pending[0]!.id!;

    // Another worker (a fence hook that returns at once) takes the same job and finishes it.
    workers.push(await startWorker(sandbox, { worker: { http: { port: 0 }, hooks: { ...hooks, fence: 'true' } } }));
    const changed = await bus.waitFor((e) => e.type === 'primary.changed', 30_000, 'primary.changed');
    expect(changed).toMatchObject({ fromId: 'p1', toId: started.type === 'failover.started' ? started.candidateId : '' });
    await eventually(async () => (await queue.getJobState(jobId)) === 'completed', 20_000, 'the same job completed');
    expect((await queue.getJob(jobId))?.returnvalue).toMatchObject({ result: { outcome: 'promoted', epoch: 2 } });
    expect(bus.events.filter((e) => e.type === 'primary.changed')).toHaveLength(1);
  });
});
