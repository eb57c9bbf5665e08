import { startMonitor } from '../monitor-harness.js';
import { ClassifierCache, classify, createRouter, rankReplicas, ReplicaSelector } from '@pgreplica/router-client';
import { startSandbox } from '@pgreplica/sandbox';
import pg from 'pg';
import { summarize } from '../stats.js';
import { type Benchmark, withRatio } from '../types.js';

const STATEMENTS = [
  'SELECT * FROM users WHERE id = $1',
  "SELECT a.id, b.name FROM a JOIN b ON a.id = b.a_id WHERE b.created_at > now() - interval '1 day' ORDER BY a.id LIMIT 50",
  'WITH r AS (SELECT id FROM t WHERE x = $1) SELECT * FROM r JOIN u USING (id)',
  'INSERT INTO events (kind, payload) VALUES ($1, $2) RETURNING id',
  'UPDATE accounts SET balance = balance - $1 WHERE id = $2',
  'SELECT * FROM jobs WHERE state = $1 ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1',
];

function nsPerCall(fn: (i: number) => unknown, iterations: number): number {
  for (let i = 0; i < 1_000; i++) fn(i);
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn(i);
  return Number(process.hrtime.bigint() - start) / iterations;
}

/**
 * Router costs: the routing decision (classifier cached, uncached, and
 * PostgreSQL's parser via libpg-query for comparison; replica ranking), read
 * throughput through the router vs a direct pg.Pool to the same replica, and
 * the share of read-your-writes reads served by replicas.
 */
export const routerBench: Benchmark = {
  name: 'router',
  description: 'routing decision cost; read throughput router vs direct pg.Pool; read-your-writes share on replicas',
  async run(ctx) {
    const iterations = ctx.quick ? 20_000 : 200_000;
    const cached: number[] = [];
    const uncached: number[] = [];
    const parser: number[] = [];
    const ranking: number[] = [];
    const missFull: number[] = [];
    const pick: number[] = [];
    const libpg = await import('libpg-query');
    await libpg.loadModule();
    const nodes = ['r1', 'r2', 'r3'].map((id, i) => ({
      id, host: '127.0.0.1', port: 5432 + i, role: 'replica' as const, status: 'healthy' as const, reason: 'ok' as const, priority: 0, weight: 1, tags: [],
      lagBytes: 0, lagMs: 5, replayLsn: '0/5000', receiveLsn: '0/5000', timeline: 1, lastCheckAt: null, since: '', consecutiveFailures: 0,
    }));
    for (let run = 0; run < ctx.runs; run++) {
      const cache = new ClassifierCache();
      cached.push(nsPerCall((i) => cache.classify(STATEMENTS[i % STATEMENTS.length]!), iterations));
      // Uncached: literals make every text different.
      uncached.push(nsPerCall((i) => classify(`SELECT * FROM users WHERE id = ${i} AND name <> 'x${i}'`), iterations / 4));
      parser.push(nsPerCall((i) => libpg.parseSync(`SELECT * FROM users WHERE id = ${i} AND name <> 'x${i}'`), iterations / 40));
      ranking.push(nsPerCall(() => rankReplicas(nodes, new Map(), { maxLagMs: 1000 }, Date.now()), iterations / 4));
      // A full cache fed unique texts (inline literals): every call a miss that evicts.
      const full = new ClassifierCache();
      for (let i = 0; i < 20_000; i++) full.classify(`SELECT * FROM users WHERE id = ${-i} AND name <> 'y${i}'`);
      missFull.push(nsPerCall((i) => full.classify(`SELECT * FROM users WHERE id = ${i + run * iterations} AND name <> 'x${i}'`), iterations / 4));
      // Stats as the router keeps them (NodeStats is internal): nothing in flight, no errors.
      const stats = new Map(nodes.map((n) => [n.id, { inFlight: 0, bannedUntil: 0, latencyEwmaMs: 1, errorScore: () => 0 }]));
      const selector = new ReplicaSelector((id) => stats.get(id) as never, 30_000);
      pick.push(nsPerCall(() => selector.pick(nodes, 30_000, Date.now()), iterations));
    }
    const parserBase = { metric: 'libpg-query parse (uncached)', summary: summarize(parser) };

    // Throughput: router.read() vs pool.query() on the same replica, interleaved.
    const sandbox = await startSandbox({ replicas: 1 });
    const password = sandbox.primary.connectionConfig.password as string;
    const monitor = await startMonitor(sandbox);
    const db = createRouter({ cluster: 'bench', redis: sandbox.redis!.url, connection: { user: 'postgres', password, database: 'postgres' }, pool: { max: 8 } });
    db.on('error', () => {});
    const replica = sandbox.replicas[0]!;
    const direct = new pg.Pool({ host: replica.host, port: replica.port, user: 'postgres', password, database: 'postgres', max: 8 });
    const routerQps: number[] = [];
    const directQps: number[] = [];
    const rywShare: number[] = [];
    try {
      await db.ready();
      const deadline = Date.now() + 15_000;
      while (db.getReadTarget().role !== 'replica' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const seconds = ctx.quick ? 1 : 3;
      const measure = async (query: () => Promise<unknown>) => {
        let count = 0;
        const until = performance.now() + seconds * 1000;
        await Promise.all(
          Array.from({ length: 8 }, async () => {
            while (performance.now() < until) {
              await query();
              count++;
            }
          }),
        );
        return count / seconds;
      };
      await db.query('CREATE TABLE IF NOT EXISTS bench_rw (id bigserial PRIMARY KEY, v int)');
      for (let run = 0; run < ctx.runs; run++) {
        directQps.push(await measure(() => direct.query('SELECT 1')));
        routerQps.push(await measure(() => db.read('SELECT 1')));
        const session = db.session();
        let fromReplica = 0;
        const pairs = ctx.quick ? 100 : 500;
        for (let i = 0; i < pairs; i++) {
          const w = await session.write<{ id: string }>('INSERT INTO bench_rw (v) VALUES ($1) RETURNING id', [i]);
          const r = await session.read<{ recovery: boolean }>('SELECT pg_is_in_recovery() AS recovery FROM bench_rw WHERE id = $1', [w.rows[0]!.id]);
          if (r.rows[0]?.recovery) fromReplica++;
        }
        rywShare.push((fromReplica / pairs) * 100);
        ctx.log(`run ${run + 1}/${ctx.runs}: router ${routerQps.at(-1)!.toFixed(0)} q/s, direct ${directQps.at(-1)!.toFixed(0)} q/s, RYW on replicas ${rywShare.at(-1)!.toFixed(1)}%`);
      }
    } finally {
      await db.close();
      await direct.end();
      await monitor.close();
      await sandbox.stop();
    }
    const directBase = { metric: 'direct pg.Pool reads (8 clients)', summary: summarize(directQps) };
    return [
      { metric: 'classify, cached', unit: 'ns/call', summary: summarize(cached) },
      { metric: parserBase.metric, unit: 'ns/call', summary: parserBase.summary },
      withRatio('classify, uncached (lexer)', 'ns/call', summarize(uncached), parserBase),
      withRatio('classify, unique texts through a full cache (miss + eviction)', 'ns/call', summarize(missFull), { metric: 'classify, uncached (lexer)', summary: summarize(uncached) }),
      { metric: 'rank 3 replicas (rankReplicas, per call)', unit: 'ns/call', summary: summarize(ranking) },
      { metric: 'pick among 3 replicas (ReplicaSelector, per read)', unit: 'ns/call', summary: summarize(pick) },
      { metric: directBase.metric, unit: 'q/s', summary: directBase.summary },
      withRatio('router.read() (8 clients)', 'q/s', summarize(routerQps), directBase),
      { metric: 'read-your-writes reads on replicas', unit: '%', summary: summarize(rywShare) },
    ];
  },
};
