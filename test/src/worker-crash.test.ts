import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Monitor } from '@pgreplica/monitor';
import { busKeys } from '@pgreplica/protocol';
import { freePort, type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeConfig } from './cli-fixture.js';
import { eventually } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';
import { clusterConfig, workerEnv } from './worker-fixture.js';

const WORKER = fileURLToPath(new URL('../../services/worker/dist/main.js', import.meta.url));

describe('worker killed in the middle of a promotion', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let bus: BusRecorder;
  let redis: Redis;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    bus = await BusRecorder.start(sandbox.redis!.url);
    redis = new Redis(sandbox.redis!.url);
  });
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await monitor?.close();
    await bus?.close();
    await redis?.quit();
    await sandbox?.stop();
  });

  const startWorkerProcess = async (configPath: string) => {
    const child = spawn(process.execPath, [WORKER, '--config', configPath], {
      env: { ...process.env, ...workerEnv(sandbox), PGREPLICA_WORKER_STALLED_INTERVAL_MS: '1000', LOG_LEVEL: 'info', PGREPLICA_HTTP_PORT: String(await freePort()) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    children.push(child);
    return { child, output: () => output };
  };

  it('does not promote twice after a restart: the re-delivered job resumes or re-decides once', async () => {
    // A fence hook that takes a while gives the test a window to kill the worker mid-job.
    const config = clusterConfig(sandbox, {});
    const worker = config.worker as Record<string, unknown>;
    const slowConfig = { ...config, worker: { ...worker, http: { port: 0 }, hooks: { ...(worker.hooks as object), fence: 'sleep 3' } } };
    const configPath = writeConfig(sandbox.baseDir, 'crash.json', slowConfig);
    monitor = await startMonitor(sandbox, { failover: config.failover, worker: slowConfig.worker });
    await eventually(() => monitor.topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');

    const first = await startWorkerProcess(configPath);
    await eventually(() => first.output().includes('worker started'), 15_000, 'worker up');
    await sandbox.primary.kill();
    await bus.waitFor((e) => e.type === 'failover.started', 20_000, 'failover.started');
    // The job is now in its fence hook: kill the worker without any chance to clean up.
    first.child.kill('SIGKILL');

    const second = await startWorkerProcess(configPath);
    const changed = await bus.waitFor((e) => e.type === 'primary.changed', 60_000, 'primary.changed');
    await bus.waitFor((e) => e.type === 'failover.finished', 30_000, 'failover.finished');
    await new Promise((resolve) => setTimeout(resolve, 3_000));

    expect(bus.events.filter((e) => e.type === 'primary.changed')).toHaveLength(1);
    expect(JSON.parse((await redis.get(busKeys('main').primary))!)).toMatchObject({ epoch: 2, primaryId: changed.type === 'primary.changed' ? changed.toId : '' });
    const writable = await Promise.all(['r1', 'r2'].map(async (id) => !(await sandbox.node(id).isInRecovery())));
    expect(writable.filter(Boolean)).toHaveLength(1);
    expect(second.output()).toContain('job started');
    second.child.kill('SIGTERM');
  });
});
