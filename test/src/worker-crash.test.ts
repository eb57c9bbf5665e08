import type { Monitor } from '@pgreplica/monitor';
import { busKeys } from '@pgreplica/protocol';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeConfig } from './cli-fixture.js';
import { eventually } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';
import { clusterConfig, startWorkerProcess, type WorkerProcess } from './worker-fixture.js';

/** Bound on the delay a worker killed mid-promotion adds (with BullMQ's own defaults it was ~61 s). */
const DEAD_WORKER_BOUND_MS = 20_000;

describe('worker killed in the middle of a promotion', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let bus: BusRecorder;
  let redis: Redis;
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    bus = await BusRecorder.start(sandbox.redis!.url);
    redis = new Redis(sandbox.redis!.url);
  });
  afterAll(async () => {
    for (const w of workers) w.child.kill('SIGKILL');
    await monitor?.close();
    await bus?.close();
    await redis?.quit();
    await sandbox?.stop();
  });

  it('does not promote twice after a restart, and the re-delivered job finishes within the bound', async () => {
    // A fence hook that takes a while gives the test a window to kill the worker mid-job.
    // The job lock and stall check are the worker's defaults (not the fixture's): the figure is what production gets.
    const config = clusterConfig(sandbox, {});
    const { stalledIntervalMs: _s, lockDurationMs: _l, ...worker } = config.worker as Record<string, unknown>;
    const slowConfig = { ...config, worker: { ...worker, http: { port: 0 }, hooks: { ...(worker.hooks as object), fence: 'sleep 3' } } };
    const configPath = writeConfig(sandbox.baseDir, 'crash.json', slowConfig);
    monitor = await startMonitor(sandbox, { failover: config.failover, worker: slowConfig.worker });
    await eventually(() => monitor.topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');

    const first = await startWorkerProcess(sandbox, configPath);
    workers.push(first);
    await sandbox.primary.kill();
    await bus.waitFor((e) => e.type === 'failover.started', 20_000, 'failover.started');
    // The job is now in its fence hook: kill the worker without any chance to clean up.
    first.child.kill('SIGKILL');
    const killedAt = Date.now();

    const second = await startWorkerProcess(sandbox, configPath);
    workers.push(second);
    const changed = await bus.waitFor((e) => e.type === 'primary.changed', 60_000, 'primary.changed');
    const delayMs = Date.parse(changed.at) - killedAt;
    process.stderr.write(`[worker-crash] kill -9 of the worker mid-promotion -> primary.changed: ${delayMs} ms\n`);
    await bus.waitFor((e) => e.type === 'failover.finished', 30_000, 'failover.finished');
    await new Promise((resolve) => setTimeout(resolve, 3_000));

    expect(delayMs).toBeLessThan(DEAD_WORKER_BOUND_MS);
    expect(bus.events.filter((e) => e.type === 'primary.changed')).toHaveLength(1);
    expect(JSON.parse((await redis.get(busKeys('main').primary))!)).toMatchObject({ epoch: 2, primaryId: changed.type === 'primary.changed' ? changed.toId : '' });
    const writable = await Promise.all(['r1', 'r2'].map(async (id) => !(await sandbox.node(id).isInRecovery())));
    expect(writable.filter(Boolean)).toHaveLength(1);
    expect(second.output()).toContain('job started');
    second.child.kill('SIGTERM');
  });
});
