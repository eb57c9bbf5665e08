import { RemediationLedger } from '@pgreplica/bus';
import type { Monitor } from '@pgreplica/monitor';
import { busKeys, REMEDIATION_QUEUE } from '@pgreplica/protocol';
import { type PostgresNode, type Sandbox, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import { type Job, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';
import { startMonitor } from './monitor-fixture.js';
import { startWorker } from './worker-fixture.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A plain client's INSERT on a node: 'ok', or the SQLSTATE that refused it (55000: the database refuses connections, i.e. fenced). */
async function plainWrite(node: PostgresNode, id: number): Promise<string> {
  const client = new pg.Client({ ...node.connectionConfig, connectionTimeoutMillis: 1_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('INSERT INTO t VALUES ($1)', [id]);
    return 'ok';
  } catch (err) {
    return (err as { code?: string }).code ?? (err as Error).message;
  } finally {
    await client.end().catch(() => {});
  }
}

// Regression for issue 8: a node being promoted looks like a second primary
// between pg_promote and the epoch bump; the fence job the monitor enqueues
// for it must leave it alone, and a fence job for an older epoch must do
// nothing. Without the promotion record, the same node is fenced.
describe('issue 8: the fence job never fences the node being promoted', () => {
  let sandbox: Sandbox;
  let monitor: Monitor | undefined;
  let worker: RemediationWorker;
  let redis: Redis;
  let queue: Queue;
  let ledger: RemediationLedger;
  let writes = 0;

  const fenceJobs = async (epoch: number): Promise<Job[]> =>
    (await queue.getJobs(['completed', 'failed'])).filter((j) => j.name === 'fence' && j.data.nodeId === 'r1' && j.data.epoch === epoch);
  /** Writes on r1 with a plain client every 100 ms for `ms`; returns every refusal. */
  const keepWriting = async (ms: number): Promise<string[]> => {
    const refused: string[] = [];
    const until = Date.now() + ms;
    while (Date.now() < until) {
      const outcome = await plainWrite(sandbox.node('r1'), ++writes);
      if (outcome !== 'ok') refused.push(outcome);
      await sleep(100);
    }
    return refused;
  };

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    monitor = await startMonitor(sandbox);
    worker = await startWorker(sandbox, { worker: { http: { port: 0 }, hooks: {} } });
    redis = new Redis(sandbox.redis!.url, { maxRetriesPerRequest: null });
    queue = new Queue(REMEDIATION_QUEUE, { connection: redis, prefix: busKeys('main').queuePrefix });
    ledger = new RemediationLedger(redis, busKeys('main'));
    await eventually(() => monitor?.topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
    await sandbox.primary.query('CREATE TABLE t (id int)');
    await sandbox.waitForReplay();
  });
  afterAll(async () => {
    await worker?.close();
    await monitor?.close();
    await queue?.close();
    await redis?.quit();
    await sandbox?.stop();
  });

  it('leaves the recorded candidate alone while it is promoted, and a job of an older epoch does nothing', async () => {
    // A promotion of r1 is in progress for epoch 1: recorded, pg_promote done, epoch not bumped yet.
    await ledger.setProgress(1, { candidateId: 'r1', phase: 'promoting' });
    await sandbox.node('r1').query('SELECT pg_promote()');
    await eventually(async () => (await fenceJobs(1)).length > 0, 20_000, 'a fence job for r1 ran');
    const [job] = await fenceJobs(1);
    expect(job!.returnvalue).toMatchObject({ result: { nodeId: 'r1', outcome: 'not-needed', detail: expect.stringContaining('candidate of the promotion in progress') } });
    // The monitor keeps seeing a second primary and re-triggers: r1 stays open and writable throughout.
    expect(await keepWriting(7_000)).toEqual([]);
    expect((await fenceJobs(1)).every((j) => j.returnvalue?.result?.outcome === 'not-needed')).toBe(true);
    const [settings] = await sandbox.node('r1').query<{ ro: string }>("SELECT current_setting('default_transaction_read_only') AS ro");
    expect(settings?.ro).toBe('off');

    // No more triggers from here on; the record is gone, and a job for epoch 0 arrives late.
    await monitor?.close();
    monitor = undefined;
    await redis.del(busKeys('main').promotion(1));
    const stale = await queue.add('fence', { cluster: 'main', epoch: 0, nodeId: 'r1', reason: 'a late job from epoch 0' }, { jobId: 'fence.main.e0.r1.late' });
    await eventually(async () => (await queue.getJobState(stale.id!)) === 'completed', 10_000, 'the epoch 0 job completed');
    expect((await queue.getJob(stale.id!))?.returnvalue).toMatchObject({ result: { outcome: 'not-needed', detail: expect.stringContaining('epoch 0') } });
    expect(await plainWrite(sandbox.node('r1'), ++writes)).toBe('ok');
  });

  it('without the promotion record, the same node is fenced', async () => {
    const since = (await fenceJobs(1)).length;
    monitor = await startMonitor(sandbox);
    await eventually(async () => (await fenceJobs(1)).some((j) => j.returnvalue?.result?.outcome === 'fenced'), 20_000, 'r1 fenced');
    expect((await fenceJobs(1)).length).toBeGreaterThan(since);
    expect(await plainWrite(sandbox.node('r1'), ++writes)).toBe('55000');
    // p1, the primary of the epoch, was never touched.
    expect(await plainWrite(sandbox.primary, ++writes)).toBe('ok');
  });
});
