import type { Monitor } from '@pgreplica/monitor';
import type { Router } from '@pgreplica/router-client';
import { type PostgresNode, type Sandbox, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, writeConfig } from './cli-fixture.js';
import { eventually } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';
import { missingOn, routerSees, startRouter, writeLoop } from './router-fixture.js';
import { clusterConfig, startWorker, workerEnv } from './worker-fixture.js';

const BUS_KEY = 'issue-8-switchover-writes-bus-key-0123';
const MAX_WRITE_PAUSE_MS = 10_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A plain pg client on one node (no router, no epoch check): what an application pinned to the old primary does. */
async function plainClient(node: PostgresNode): Promise<pg.Client> {
  const client = new pg.Client({ ...node.connectionConfig, connectionTimeoutMillis: 1_000 });
  client.on('error', () => {});
  await client.connect();
  return client;
}

/**
 * A session that turns `default_transaction_read_only` off for itself and
 * inserts in a loop, reconnecting after every error: the client a soft fence
 * does not stop. Ids from `firstId` up; returns the acknowledged ones.
 */
function stubbornWriter(node: PostgresNode, firstId: number) {
  const acked: number[] = [];
  const errors: string[] = [];
  let running = true;
  let next = firstId;
  const loop = (async () => {
    while (running) {
      let client: pg.Client | undefined;
      try {
        client = await plainClient(node);
        await client.query('SET default_transaction_read_only = off');
        while (running) {
          const id = next++;
          await client.query('INSERT INTO ledger (id) VALUES ($1)', [id]);
          acked.push(id);
        }
      } catch (err) {
        errors.push((err as Error).message);
        await sleep(50);
      } finally {
        await client?.end().catch(() => {});
      }
    }
  })();
  return {
    acked,
    errors,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

// Regression for issue 8: a switchover (no stop hook, no rejoin hook: the
// worker drains and fences the old primary itself) loses no acknowledged
// write, whoever wrote it: a transaction that started just before and
// commits late, a session that overrides default_transaction_read_only, and
// the router's own write loop.
describe('issue 8: a switchover loses no acknowledged write', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let worker: RemediationWorker;
  let db: Router;
  let bus: BusRecorder;
  let configPath: string;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    const config = clusterConfig(sandbox, {});
    const workerSection = { ...(config.worker as object), hooks: {} };
    monitor = await startMonitor(sandbox, { failover: config.failover, worker: workerSection }, BUS_KEY);
    worker = await startWorker(sandbox, { worker: { http: { port: 0 }, hooks: {} } }, BUS_KEY);
    bus = await BusRecorder.start(sandbox.redis!.url, 'main', BUS_KEY);
    db = await startRouter(sandbox, { busKey: BUS_KEY, maxWritePauseMs: MAX_WRITE_PAUSE_MS, pool: { max: 4, query_timeout: 20_000 } });
    await routerSees(db, (r) => r.getTopology().topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
    await db.query('CREATE TABLE ledger (id int PRIMARY KEY)');
    configPath = writeConfig(sandbox.baseDir, 'cli.json', { ...config, worker: workerSection });
  });
  afterAll(async () => {
    await db?.close();
    await worker?.close();
    await monitor?.close();
    await bus?.close();
    await sandbox?.stop();
  });

  it('every acknowledged commit is on the new primary; the old primary is fenced or a replica', async () => {
    const p1 = sandbox.node('p1');
    const routed = writeLoop(db, sandbox, 2);
    const stubborn = stubbornWriter(p1, 1_000_000);
    // A transaction that starts just before the switchover and commits 3 s later.
    const late = await plainClient(p1);
    await late.query('BEGIN');
    await late.query('SELECT 1');
    const lateCommit = (async () => {
      await sleep(3_000);
      await late.query('INSERT INTO ledger (id) VALUES (2000000)');
      await late.query('COMMIT');
      return true;
    })().catch(() => false);
    await sleep(500);

    const since = bus.events.length;
    const result = await cli(['--config', configPath, 'switchover', '--to', 'r1', '--max-write-pause-ms', String(MAX_WRITE_PAUSE_MS), '--wait', '--json'], workerEnv(sandbox, BUS_KEY));
    expect(result.err).toBe('');
    expect(result.code).toBe(0);
    const finished = await bus.waitFor((e) => e.type === 'switchover.finished', 10_000, 'switchover.finished', since);
    expect(finished).toMatchObject({ fromId: 'p1', toId: 'r1', ok: true });
    await eventually(() => routed.acked.some((a) => a.node === 'r1'), 20_000, 'routed writes on r1');
    await sleep(1_000);
    const lateAcked = await lateCommit;
    await late.end().catch(() => {});
    await routed.stop();
    await stubborn.stop();

    const acked = [...routed.acked.map((a) => a.id), ...stubborn.acked, ...(lateAcked ? [2_000_000] : [])];
    const lost = await missingOn(sandbox, 'r1', acked);
    process.stderr.write(
      `[switchover-writes] acknowledged: router ${routed.acked.length}, stubborn session ${stubborn.acked.length} (errors ${stubborn.errors.length}), late transaction ${lateAcked}; lost ${lost.length}\n`,
    );
    expect(lost).toEqual([]);
    expect(routed.failures).toEqual([]);
    expect(stubborn.acked.length).toBeGreaterThan(0);

    // The old primary takes no write from anyone: it refuses connections (fenced) or is a replica.
    const old = await plainClient(p1).then(
      async (c) => {
        const [row] = (await c.query<{ recovery: boolean }>('SELECT pg_is_in_recovery() AS recovery')).rows;
        await c.end();
        return row?.recovery === true ? 'replica' : 'writable';
      },
      (err: { code?: string }) => (err.code === '55000' ? 'fenced' : `unreachable (${err.code})`),
    );
    expect(['fenced', 'replica']).toContain(old);
    // No write of the old primary forked the other replica off the new timeline: it streams from r1.
    await eventually(async () => (await sandbox.replicationStatus(sandbox.node('r1'))).some((r) => r.id === 'r2' && r.state === 'streaming'), 15_000, 'r2 streaming from r1');
    const [r2] = await sandbox.node('r2').query<{ tli: number }>('SELECT received_tli AS tli FROM pg_stat_wal_receiver');
    expect(r2?.tli).toBe(2);
  });
});
