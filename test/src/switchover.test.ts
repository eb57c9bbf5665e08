import type { Monitor } from '@pgreplica/monitor';
import type { Router } from '@pgreplica/router-client';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, writeConfig } from './cli-fixture.js';
import { eventually } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';
import { missingOn, routerSees, startRouter, writeLoop } from './router-fixture.js';
import { clusterConfig, startWorker, workerEnv } from './worker-fixture.js';

const BUS_KEY = 'switchover-test-bus-key-012345678';
const MAX_WRITE_PAUSE_MS = 10_000;

describe('switchover under a concurrent write loop', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let worker: RemediationWorker;
  let db: Router;
  let bus: BusRecorder;
  let configPath: string;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    const config = clusterConfig(sandbox);
    monitor = await startMonitor(sandbox, { failover: config.failover, worker: config.worker }, BUS_KEY);
    worker = await startWorker(sandbox, {}, BUS_KEY);
    bus = await BusRecorder.start(sandbox.redis!.url, 'main', BUS_KEY);
    db = await startRouter(sandbox, { busKey: BUS_KEY, maxWritePauseMs: MAX_WRITE_PAUSE_MS, pool: { max: 4, query_timeout: 20_000 } });
    await routerSees(db, (r) => r.getTopology().topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
    await db.query('CREATE TABLE ledger (id int PRIMARY KEY)');
    configPath = writeConfig(sandbox.baseDir, 'cli.json', config);
  });
  afterAll(async () => {
    await db?.close();
    await worker?.close();
    await monitor?.close();
    await bus?.close();
    await sandbox?.stop();
  });

  it('loses no acknowledged write, fails none, and the old primary ends up streaming from the new one', async () => {
    const loop = writeLoop(db, sandbox, 3);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const result = await cli(['--config', configPath, 'switchover', '--to', 'r1', '--max-write-pause-ms', String(MAX_WRITE_PAUSE_MS), '--wait', '--json'], workerEnv(sandbox, BUS_KEY));
    expect(result.err).toBe('');
    expect(result.code).toBe(0);
    await eventually(() => loop.acked.some((a) => a.node === 'r1'), 20_000, 'writes on r1');
    await new Promise((resolve) => setTimeout(resolve, 500));
    await loop.stop();

    const finished = await bus.waitFor((e) => e.type === 'switchover.finished', 10_000, 'switchover.finished');
    expect(finished).toMatchObject({ fromId: 'p1', toId: 'r1', ok: true });
    const pause = finished.type === 'switchover.finished' ? finished.writePauseMs : -1;
    const lost = await missingOn(sandbox, 'r1', loop.acked.map((a) => a.id));
    process.stderr.write(`[switchover] write pause ${Math.round(pause)} ms; acknowledged ${loop.acked.length}, lost ${lost.length}, failed ${loop.failures.length}\n`);
    expect(loop.failures).toEqual([]);
    expect(lost).toEqual([]);
    expect(pause).toBeLessThan(MAX_WRITE_PAUSE_MS);
    expect(JSON.parse(result.out)).toMatchObject({ result: { outcome: 'switched', primaryId: 'r1', oldPrimary: 'rejoined' } });

    // The old primary is a replica of the new one now; r2 follows r1 too.
    expect(await sandbox.node('p1').isInRecovery()).toBe(true);
    await eventually(async () => {
      const rep = await sandbox.node('r1').query<{ application_name: string; state: string }>('SELECT application_name, state FROM pg_stat_replication');
      return ['p1', 'r2'].every((id) => rep.some((r) => r.application_name === id && r.state === 'streaming'));
    }, 30_000, 'p1 and r2 streaming from r1');
    expect(db.getWriteTarget().nodeId).toBe('r1');
  });
});
