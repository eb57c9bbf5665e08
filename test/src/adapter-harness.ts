import type { Monitor } from '@pgreplica/monitor';
import { type Router, runWithSession, type Session } from '@pgreplica/router-client';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, writeConfig } from './cli-fixture.js';
import { eventually } from './helpers.js';
import { startMonitor } from './monitor-fixture.js';
import { missingOn, portMap, routerSees, startRouter } from './router-fixture.js';
import { clusterConfig, startWorker, workerEnv } from './worker-fixture.js';

/**
 * What an ORM adapter test supplies: its database over the router, and the
 * few statements the shared checks run through it — each written in the
 * ORM's own query builder — against `ledger (id int primary key, note text)`.
 */
export interface AdapterUnderTest {
  /** A read through the ORM: the port of the server that ran it. */
  readPort(): Promise<number>;
  /** Inserts `id` through the ORM; the port of the server that ran it. */
  insert(id: number): Promise<number>;
  /** Inserts `id` in an ORM transaction and reads the port inside it. */
  insertInTransaction(id: number): Promise<number>;
  /** A read-only ORM transaction: the port of the server that ran it (absent when the ORM has none). */
  readOnlyTransactionPort?(): Promise<number>;
  /** Reads `id` back through the ORM: whether the row is there. */
  has(id: number): Promise<boolean>;
  /**
   * Runs `fn` as one request of `session` (the adapter's way: its session
   * helper, or `runWithSession`). The default is `runWithSession`.
   */
  inRequest?<T>(session: Session, fn: (orm: AdapterUnderTest) => Promise<T>): Promise<T>;
  /** Closes what the adapter opened (not the router). */
  close(): Promise<void>;
}

/** An error and its causes (ORMs wrap the driver's error), one line. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  for (let e = err as (Error & { code?: string }) | undefined; e; e = e.cause as typeof e) parts.push(`${e.message.split('\n')[0]}${e.code ? ` [${e.code}]` : ''}`);
  return parts.join(' <- ');
}

const BUS_KEY = 'adapter-test-bus-key-0123456789ab';
const MAX_WRITE_PAUSE_MS = 10_000;

/**
 * The checks every adapter passes against real servers: reads on replicas,
 * writes and transactions on the primary, a read after a write in the same
 * request sees it, a killed replica fails no read, a switchover fails no
 * write. One sandbox, monitor and worker per file.
 */
export function describeAdapter(name: string, make: (router: Router) => Promise<AdapterUnderTest>): void {
  describe(`${name} over the router`, () => {
    let sandbox: Sandbox;
    let monitor: Monitor;
    let worker: RemediationWorker;
    let router: Router;
    let orm: AdapterUnderTest;
    let ports: Map<number, string>;
    let nextId = 0;

    beforeAll(async () => {
      sandbox = await startSandbox({ replicas: 2 });
      ports = portMap(sandbox);
      const config = clusterConfig(sandbox);
      monitor = await startMonitor(sandbox, { failover: config.failover, worker: config.worker }, BUS_KEY);
      worker = await startWorker(sandbox, {}, BUS_KEY);
      router = await startRouter(sandbox, { busKey: BUS_KEY, maxWritePauseMs: MAX_WRITE_PAUSE_MS, pool: { max: 6, query_timeout: 20_000 } });
      await routerSees(router, (r) => r.getTopology().topology?.nodes.every((n) => n.status === 'healthy') === true, 20_000, 'all healthy');
      await router.write('CREATE TABLE ledger (id int PRIMARY KEY, note text)');
      await sandbox.waitForReplay();
      orm = await make(router);
    });
    afterAll(async () => {
      await orm?.close().catch(() => {});
      await router?.close();
      await worker?.close();
      await monitor?.close();
      await sandbox?.stop();
    });

    const nodeOf = (port: number) => ports.get(port);
    const request = <T>(session: Session, fn: (o: AdapterUnderTest) => Promise<T>) => (orm.inRequest ? orm.inRequest(session, fn) : runWithSession(session, () => fn(orm)));

    it('sends reads to the replicas, writes and transactions to the primary', async () => {
      const readers = new Set<string | undefined>();
      for (let i = 0; i < 40 && readers.size < 2; i++) readers.add(nodeOf(await orm.readPort()));
      expect([...readers].sort()).toEqual(['r1', 'r2']);
      expect(nodeOf(await orm.insert(++nextId))).toBe('p1');
      expect(nodeOf(await orm.insertInTransaction(++nextId))).toBe('p1');
      if (orm.readOnlyTransactionPort) expect(['r1', 'r2']).toContain(nodeOf(await orm.readOnlyTransactionPort()));
    });

    it('a read after a write in the same request sees it, while the replicas lag', async () => {
      // Each commit reaches the replicas' replay 2 s late: stale, but within every lag bound (they stay healthy and take reads).
      await Promise.all(sandbox.replicas.map((r) => r.setApplyDelay(2_000)));
      try {
        const session = router.session();
        for (let i = 0; i < 5; i++) {
          const id = ++nextId;
          const seen = await request(session, async (o) => {
            await o.insert(id);
            return o.has(id);
          });
          expect(seen).toBe(true);
          const inTx = ++nextId;
          const seenInTx = await request(session, async (o) => {
            await o.insertInTransaction(inTx);
            return o.has(inTx);
          });
          expect(seenInTx).toBe(true);
        }
        expect(session.token).toMatch(/^v1\./);
        // Without the session the replicas (replay paused) do not have it: the check above is not vacuous.
        expect(await orm.has(nextId)).toBe(false);
      } finally {
        await Promise.all(sandbox.replicas.map((r) => r.setApplyDelay(0)));
        await sandbox.waitForReplay();
        await routerSees(router, (r) => r.getTopology().topology?.nodes.every((n) => n.status === 'healthy') === true, 20_000, 'all healthy');
      }
    });

    it('a replica killed under load fails no read', async () => {
      let failed = 0;
      let reads = 0;
      const errors: string[] = [];
      let done = false;
      const loop = async () => {
        while (!done) {
          try {
            await orm.readPort();
            reads++;
          } catch (err) {
            failed++;
            if (errors.length === 0) errors.push(JSON.stringify(router.getMetrics().map((m) => [m.id, m.role, m.status, m.reason, m.lagMs, m.bannedForMs])));
            errors.push(describeError(err));
          }
        }
      };
      const loops = Array.from({ length: 4 }, loop);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await sandbox.node('r1').kill();
      await routerSees(router, (r) => r.getTopology().topology?.nodes.find((n) => n.id === 'r1')?.status === 'unhealthy', 20_000, 'r1 unhealthy');
      await new Promise((resolve) => setTimeout(resolve, 500));
      done = true;
      await Promise.all(loops);
      expect(errors).toEqual([]);
      expect(failed).toBe(0);
      expect(reads).toBeGreaterThan(50);
      await sandbox.node('r1').restart();
      await routerSees(router, (r) => r.getTopology().topology?.nodes.every((n) => n.status === 'healthy') === true, 30_000, 'r1 healthy again');
    });

    it('a switchover fails no write (statements and transactions) and loses none', async () => {
      const acked: number[] = [];
      const failures: string[] = [];
      let running = true;
      const loop = async (inTransaction: boolean) => {
        while (running) {
          const id = ++nextId;
          try {
            await (inTransaction ? orm.insertInTransaction(id) : orm.insert(id));
            acked.push(id);
          } catch (err) {
            failures.push(`${id}: ${describeError(err)}`);
          }
        }
      };
      const loops = [loop(false), loop(false), loop(true)];
      await new Promise((resolve) => setTimeout(resolve, 500));
      const configPath = writeConfig(sandbox.baseDir, `cli-${name}.json`, clusterConfig(sandbox));
      const result = await cli(['--config', configPath, 'switchover', '--to', 'r2', '--max-write-pause-ms', String(MAX_WRITE_PAUSE_MS), '--wait', '--json'], workerEnv(sandbox, BUS_KEY));
      expect(result.err).toBe('');
      expect(result.code).toBe(0);
      await routerSees(router, (r) => r.getWriteTarget().nodeId === 'r2', 20_000, 'writes on r2');
      await eventually(async () => nodeOf(await orm.insert(++nextId)) === 'r2', 20_000, 'an ORM write on r2');
      await new Promise((resolve) => setTimeout(resolve, 300));
      running = false;
      await Promise.all(loops);
      process.stderr.write(`[${name} switchover] acknowledged ${acked.length}, failed ${failures.length}\n`);
      expect(failures).toEqual([]);
      expect(await missingOn(sandbox, 'r2', acked)).toEqual([]);
      expect(acked.length).toBeGreaterThan(20);
    });
  });
}
