import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Monitor } from '@pgreplica/monitor';
import { busKeys, REMEDIATION_QUEUE } from '@pgreplica/protocol';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeConfig } from './cli-fixture.js';
import { eventually, watchWritable, type WritableWatch } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';
import { clusterConfig, startWorkerProcess, type WorkerProcess } from './worker-fixture.js';

// Regression for issue 8: two workers, duplicate promote jobs, and a worker
// that stalls (SIGSTOP: a GC pause, a frozen VM) in the middle of a promotion
// for longer than its BullMQ lock (3 s) and the change lock (5 s). While it is
// stopped the other worker takes the promotion over; to make the interleaving
// deterministic the stalled run's candidate is frozen too, so the takeover
// promotes the other replica. When the stalled worker wakes up, its run must
// not promote anything: exactly one new primary, ever.
describe('issue 8: two workers, duplicate jobs, a stalled worker', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let bus: BusRecorder;
  let redis: Redis;
  let queue: Queue;
  let watch: WritableWatch | undefined;
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    bus = await BusRecorder.start(sandbox.redis!.url);
    redis = new Redis(sandbox.redis!.url, { maxRetriesPerRequest: null });
    queue = new Queue(REMEDIATION_QUEUE, { connection: redis, prefix: busKeys('main').queuePrefix });
  });
  afterAll(async () => {
    for (const w of workers) {
      w.child.kill('SIGCONT');
      w.child.kill('SIGKILL');
    }
    for (const n of sandbox?.nodes ?? []) if (n.running) n.resume();
    await watch?.stop();
    await monitor?.close();
    await queue?.close();
    await bus?.close();
    await redis?.quit();
    await sandbox?.stop();
  });

  it('promotes exactly one node once, with no second writable primary at any time', async () => {
    // The fence hook tells which worker runs the promotion (its parent pid), then takes a while.
    const pidFile = join(sandbox.baseDir, 'fence-hook-pids');
    const config = clusterConfig(sandbox, {});
    // The worker's own defaults for the job lock (3 s) and the stall check (1 s).
    const { stalledIntervalMs: _s, lockDurationMs: _l, ...worker } = config.worker as Record<string, unknown>;
    const workerSection = { ...worker, http: { port: 0 }, hooks: { ...(worker.hooks as object), fence: `echo $PPID >> ${pidFile}; sleep 3` } };
    const configPath = writeConfig(sandbox.baseDir, 'stalled.json', { ...config, worker: workerSection });
    monitor = await startMonitor(sandbox, { failover: config.failover, worker: workerSection });
    await eventually(() => monitor.topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
    workers.push(await startWorkerProcess(sandbox, configPath), await startWorkerProcess(sandbox, configPath));
    watch = watchWritable(sandbox.replicas);

    await sandbox.primary.kill();
    // Duplicates of the monitor's own job, as an operator or a second monitor would add them.
    const payload = { cluster: 'main', epoch: 1, failedPrimaryId: 'p1', automatic: false, dryRun: false, detectedAt: new Date().toISOString() };
    for (const id of ['dup-a', 'dup-b']) await queue.add('promote', payload, { jobId: `promote.main.e1.${id}`, attempts: 5, backoff: { type: 'exponential', delay: 500 } });

    const started = await bus.waitFor((e) => e.type === 'failover.started', 20_000, 'failover.started');
    const candidateId = (started.type === 'failover.started' && started.candidateId) || '';
    await eventually(() => readFileSync(pidFile, 'utf8').trim().length > 0, 10_000, 'the fence hook ran');
    const stalledPid = Number(readFileSync(pidFile, 'utf8').trim().split('\n')[0]);
    const stalled = workers.find((w) => w.child.pid === stalledPid);
    expect(stalled, `fence hook parent ${stalledPid} is one of the workers`).toBeDefined();
    // The worker stops mid-promotion (in its fence hook, candidate chosen), and so does its candidate.
    stalled!.child.kill('SIGSTOP');
    sandbox.node(candidateId).pause();
    let changed: Awaited<ReturnType<BusRecorder['waitFor']>>;
    try {
      // The other worker takes over once the stalled one's locks expire.
      changed = await bus.waitFor((e) => e.type === 'primary.changed', 30_000, 'primary.changed');
    } finally {
      sandbox.node(candidateId).resume();
    }
    const winner = changed.type === 'primary.changed' ? changed.toId : '';
    const mark = stalled!.output().length;
    stalled!.child.kill('SIGCONT');
    // The stalled run carries on from where it stopped: give it time to do (not do) its damage.
    await eventually(() => /"msg":"job (failed|finished)"/.test(stalled!.output().slice(mark)), 20_000, 'the stalled run ends');
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    await watch.stop();

    process.stderr.write(`[stalled-worker] stalled run's candidate ${candidateId}, takeover promoted ${winner}; most writable replicas at once: ${watch.maxWritable} (${watch.evidence.join('; ') || 'none'})\n`);
    expect(watch.maxWritable).toBeLessThanOrEqual(1);
    // It stopped because its change lock was gone, not by luck.
    expect(stalled!.output().slice(mark)).toContain('lost the change lock');
    expect(bus.events.filter((e) => e.type === 'primary.changed')).toHaveLength(1);
    expect(JSON.parse((await redis.get(busKeys('main').primary))!)).toMatchObject({ epoch: 2, primaryId: winner });
    expect(await redis.get(busKeys('main').epoch)).toBe('2');
    const promoted = new Set(workers.flatMap((w) => [...w.output().matchAll(/"promoted ([^"]+)"/g)].map((m) => m[1])));
    expect([...promoted]).toEqual([winner]);
    const inRecovery = await Promise.all(sandbox.replicas.map((n) => n.isInRecovery().catch(() => null)));
    expect(inRecovery.filter((r) => r === false)).toHaveLength(1);
  });
});
