import type { Monitor } from '@pgreplica/monitor';
import { busKeys } from '@pgreplica/protocol';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, writeConfig } from './cli-fixture.js';
import { eventually } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';
import { clusterConfig, startWorker, workerEnv } from './worker-fixture.js';

describe('switchover that cannot complete', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let worker: RemediationWorker;
  let bus: BusRecorder;
  let redis: Redis;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 1 });
    monitor = await startMonitor(sandbox);
    // No stop hook: the old primary is only made read-only, so an abort can make it writable again.
    worker = await startWorker(sandbox, { worker: { http: { port: 0 }, catchupTimeoutMs: 2_000, hooks: {} } });
    bus = await BusRecorder.start(sandbox.redis!.url);
    redis = new Redis(sandbox.redis!.url);
    await eventually(() => monitor.topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
    await sandbox.primary.query('CREATE TABLE t (id int)');
  });
  afterAll(async () => {
    await worker?.close();
    await monitor?.close();
    await bus?.close();
    await redis?.quit();
    await sandbox?.stop();
  });

  it('aborts when the candidate does not catch up: the old primary is writable again, nothing promoted', async () => {
    const r1 = sandbox.node('r1');
    await r1.pauseReplay();
    try {
      await sandbox.primary.query('INSERT INTO t VALUES (1)');
      const config = writeConfig(sandbox.baseDir, 'abort.json', clusterConfig(sandbox, { worker: { http: { port: 0 }, catchupTimeoutMs: 2_000, hooks: {} } }));
      const result = await cli(['--config', config, 'switchover', '--to', 'r1', '--max-write-pause-ms', '2000', '--wait'], workerEnv(sandbox));
      expect(result.code).toBe(1);
      expect(result.err).toContain('switchover aborted');
      const finished = await bus.waitFor((e) => e.type === 'switchover.finished', 5_000, 'switchover.finished');
      expect(finished).toMatchObject({ ok: false, fromId: 'p1', toId: 'r1' });
      expect(finished.type === 'switchover.finished' && finished.detail).toContain('p1 is writable again');
      // Nothing changed for good: p1 takes writes, r1 is still a replica, the epoch is 1.
      await sandbox.primary.query('INSERT INTO t VALUES (2)');
      expect(await r1.isInRecovery()).toBe(true);
      expect(JSON.parse((await redis.get(busKeys('main').primary))!)).toMatchObject({ epoch: 1, primaryId: 'p1' });
      // p1 was read-only for the whole drain (> 2 s, several times the monitor's fall × interval), under the
      // switchover's change lock: the monitor never reported it as a primary left read-only.
      expect(bus.events.filter((e) => e.type === 'node.status' && e.reason === 'read-only')).toEqual([]);
    } finally {
      await r1.resumeReplay();
    }
  });
});
