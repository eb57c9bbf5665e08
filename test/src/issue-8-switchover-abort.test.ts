import type { Monitor } from '@pgreplica/monitor';
import { busKeys, REMEDIATION_QUEUE } from '@pgreplica/protocol';
import { type PostgresNode, type Sandbox, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, writeConfig } from './cli-fixture.js';
import { eventually, watchWritable } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';
import { clusterConfig, SANDBOX_HOOK, startWorker, workerEnv } from './worker-fixture.js';

/** What makes a primary writable for every client, read on the node itself. */
async function writability(node: PostgresNode): Promise<{ ro: string; sync: string; recovery: boolean }> {
  const [row] = await node.query<{ ro: string; sync: string; recovery: boolean }>(
    "SELECT current_setting('default_transaction_read_only') AS ro, current_setting('synchronous_standby_names') AS sync, pg_is_in_recovery() AS recovery",
  );
  return row!;
}

// Regression for issue 8: a switchover that fails before the promotion
// leaves the old primary writable (settings undone, nothing stopped), and one
// that fails after it drives forward on retry to one new primary.
describe('issue 8: a switchover that fails midway', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let worker: RemediationWorker | undefined;
  let bus: BusRecorder;
  let redis: Redis;
  let queue: Queue;
  let cliConfig: string;
  let before: { ro: string; sync: string; recovery: boolean };

  const switchover = () => cli(['--config', cliConfig, 'switchover', '--to', 'r1', '--max-write-pause-ms', '2000', '--wait'], workerEnv(sandbox));
  const useWorker = async (hooks: Record<string, string>) => {
    await worker?.close();
    worker = await startWorker(sandbox, { worker: { http: { port: 0 }, catchupTimeoutMs: 2_000, hooks: { ...hooks, passEnv: ['PGREPLICA_SANDBOX_STATE'] } } });
  };
  const expectWritableAgain = async (since: number) => {
    const finished = await bus.waitFor((e) => e.type === 'switchover.finished', 10_000, 'switchover.finished', since);
    expect(finished).toMatchObject({ ok: false, fromId: 'p1', toId: 'r1' });
    const detail = finished.type === 'switchover.finished' ? (finished.detail ?? '') : '';
    expect(detail).toContain('p1 is writable again');
    expect(detail).toContain('changed: made r1 the synchronous standby of p1');
    // A plain client writes on p1 again, with the settings it had; r1 is still a replica; epoch 1.
    await sandbox.primary.query('INSERT INTO t VALUES (1)');
    expect(await writability(sandbox.primary)).toEqual(before);
    expect(await sandbox.node('r1').isInRecovery()).toBe(true);
    expect(JSON.parse((await redis.get(busKeys('main').primary))!)).toMatchObject({ epoch: 1, primaryId: 'p1' });
    expect(await redis.get(busKeys('main').promotion(1))).toBeNull();
    // Both replicas stream from p1 again (r2, had it been moved to cascade from r1, is moved back).
    await eventually(async () => {
      const rows = await sandbox.replicationStatus();
      return ['r1', 'r2'].every((id) => rows.some((r) => r.id === id && r.state === 'streaming'));
    }, 15_000, 'r1 and r2 streaming from p1');
  };

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    monitor = await startMonitor(sandbox);
    bus = await BusRecorder.start(sandbox.redis!.url);
    redis = new Redis(sandbox.redis!.url, { maxRetriesPerRequest: null });
    queue = new Queue(REMEDIATION_QUEUE, { connection: redis, prefix: busKeys('main').queuePrefix });
    await eventually(() => monitor.topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
    await sandbox.primary.query('CREATE TABLE t (id int)');
    before = await writability(sandbox.primary);
    cliConfig = writeConfig(sandbox.baseDir, 'cli.json', clusterConfig(sandbox));
  });
  afterAll(async () => {
    await worker?.close();
    await monitor?.close();
    await queue?.close();
    await bus?.close();
    await redis?.quit();
    await sandbox?.stop();
  });

  it('a stop hook that fails: the old primary is writable again, ok:false says what changed', async () => {
    await useWorker({ stop: 'exit 1' });
    const since = bus.events.length;
    const result = await switchover();
    expect(result.code).toBe(1);
    expect(result.err).toContain('switchover aborted');
    await expectWritableAgain(since);
  });

  it('a candidate that cannot catch up, with a stop hook configured: the old primary is not stopped, and writable again', async () => {
    await useWorker({ stop: `node ${SANDBOX_HOOK} stop`, rejoin: `node ${SANDBOX_HOOK} rejoin` });
    const r1 = sandbox.node('r1');
    await r1.pauseReplay();
    try {
      await sandbox.primary.query('INSERT INTO t VALUES (2)');
      const since = bus.events.length;
      const result = await switchover();
      expect(result.code).toBe(1);
      expect(result.err).toContain('switchover aborted');
      expect(sandbox.primary.running).toBe(true);
      await expectWritableAgain(since);
    } finally {
      await r1.resumeReplay();
    }
  });

  it('a failure after the promotion: the retry drives forward to one new primary, epoch + 1, nothing half-done', async () => {
    await useWorker({ stop: `node ${SANDBOX_HOOK} stop`, rejoin: `node ${SANDBOX_HOOK} rejoin` });
    // The new primary's epoch write fails once (a sequence is not rolled back with the failed insert).
    await sandbox.primary.query(`
      CREATE SEQUENCE epoch_write_failures;
      CREATE FUNCTION fail_first_epoch_write() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.primary_id = 'r1' AND nextval('epoch_write_failures') = 1 THEN RAISE EXCEPTION 'injected: the epoch write fails once'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER fail_first_epoch_write BEFORE INSERT ON pgreplica.epoch FOR EACH ROW EXECUTE FUNCTION fail_first_epoch_write();`);
    await sandbox.waitForReplay();
    const since = bus.events.length;
    const watch = watchWritable(sandbox.nodes);
    try {
      const job = await queue.add('switchover', { cluster: 'main', epoch: 1, candidateId: 'r1', maxWritePauseMs: 5_000 }, { jobId: 'switchover.main.e1.r1.retried', attempts: 3, backoff: { type: 'fixed', delay: 200 } });
      const failed = await bus.waitFor((e) => e.type === 'remediation.failed' && e.job === 'switchover', 20_000, 'the first attempt fails', since);
      expect(failed.type === 'remediation.failed' && failed.error).toContain('injected: the epoch write fails once');
      expect(failed.type === 'remediation.failed' && failed.changed).toContain('promoted r1');

      const finished = await bus.waitFor((e) => e.type === 'switchover.finished', 30_000, 'switchover.finished', since);
      expect(finished).toMatchObject({ ok: true, fromId: 'p1', toId: 'r1' });
      await eventually(async () => (await queue.getJobState(job.id!)) === 'completed', 10_000, 'the job completed');
      expect((await queue.getJob(job.id!))?.attemptsMade).toBe(2);
    } finally {
      await watch.stop();
    }
    expect(watch.maxWritable, watch.evidence.join('; ')).toBe(1);
    expect(bus.events.slice(since).filter((e) => e.type === 'primary.changed')).toEqual([expect.objectContaining({ fromId: 'p1', toId: 'r1', epoch: 2 })]);
    expect(JSON.parse((await redis.get(busKeys('main').primary))!)).toMatchObject({ epoch: 2, primaryId: 'r1' });
    expect(await sandbox.node('r1').query('SELECT epoch::int, primary_id FROM pgreplica.epoch ORDER BY epoch')).toEqual([
      { epoch: 1, primary_id: 'p1' },
      { epoch: 2, primary_id: 'r1' },
    ]);
    // Nothing half-done: r1 takes writes with default settings, p1 and r2 stream from it.
    expect(await writability(sandbox.node('r1'))).toEqual({ ...before, recovery: false });
    await sandbox.node('r1').query('INSERT INTO t VALUES (3)');
    await eventually(async () => {
      const rows = await sandbox.replicationStatus(sandbox.node('r1'));
      return ['p1', 'r2'].every((id) => rows.some((r) => r.id === id && r.state === 'streaming'));
    }, 30_000, 'p1 and r2 streaming from r1');
    expect(await sandbox.primary.isInRecovery()).toBe(true);
  });
});
