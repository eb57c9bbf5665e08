import pg from 'pg';
import { summarize } from '../stats.js';
import type { Benchmark, Figure } from '../types.js';
import { interleave, type LoadSample, servedBy, startRouterBench } from './router-load.js';

const ACCOUNTS = 100_000;

/** The figures of one case: q/s (with the ratio to its baseline), CPU per query, p50 and p99, each with a ratio. */
function figures(label: string, samples: LoadSample[], base: { label: string; samples: LoadSample[] } | null): Figure[] {
  const pick = (s: LoadSample[], k: keyof LoadSample) => summarize(s.map((x) => x[k]));
  const rows: [keyof LoadSample, string, string][] = [
    ['qps', 'q/s', ''],
    ['cpuUsPerQuery', 'µs/query', ' CPU'],
    ['p50Ms', 'ms', ' p50'],
    ['p99Ms', 'ms', ' p99'],
  ];
  return rows.map(([key, unit, suffix]) => {
    const summary = pick(samples, key);
    if (!base) return { metric: `${label}${suffix}`, unit, summary };
    const b = pick(base.samples, key);
    return { metric: `${label}${suffix}`, unit, summary, baseline: { metric: `${base.label}${suffix}`, median: b.median }, ratio: summary.median / b.median };
  });
}

/**
 * Read throughput through the router against a bare pg.Pool at the one
 * replica, in the same process, interleaved run by run: router.read() and
 * router.query() on `SELECT 1` and on a point read of pgbench_accounts, at 8
 * and 32 concurrent loops; q/s, client CPU per query, p50/p99. The monitor
 * runs in its own process with the documented defaults (probe 1 s,
 * heartbeat 5 s) and the router with its defaults (pool max 10; the bare pool
 * has pg's default max 10 too).
 */
export const routerReads: Benchmark = {
  name: 'router-reads',
  description: 'router.read()/query() vs a bare pg.Pool at the replica: SELECT 1 and a point read, 8 and 32 loops; q/s, CPU/query, p50/p99',
  async run(ctx) {
    const seconds = ctx.quick ? 1 : 3;
    const { sandbox, db, password, close } = await startRouterBench('bench-reads');
    const replica = sandbox.replicas[0]!;
    const bare = new pg.Pool({ host: replica.host, port: replica.port, user: 'postgres', password, database: 'postgres' });
    const out: Figure[] = [];
    try {
      await sandbox.primary.query('CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84))');
      await sandbox.primary.query(`INSERT INTO pgbench_accounts SELECT g, 1, 0, '' FROM generate_series(1, ${ACCOUNTS}) g`);
      await sandbox.primary.query('ANALYZE pgbench_accounts');
      const lsn = (await sandbox.primary.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn'))[0]!.lsn;
      while (!(await bare.query(`SELECT pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn AS ok`)).rows[0].ok) await new Promise((r) => setTimeout(r, 100));
      const statements = [
        { name: 'SELECT 1', sql: 'SELECT 1', params: (_i: number): unknown[] | undefined => undefined },
        { name: 'point read', sql: 'SELECT abalance FROM pgbench_accounts WHERE aid = $1', params: (i: number): unknown[] => [(i * 7919) % ACCOUNTS + 1] },
      ];
      const before = await servedBy(db);
      for (const statement of statements) {
        for (const loops of [8, 32]) {
          const cases = {
            bare: (i: number) => bare.query(statement.sql, statement.params(i)),
            read: (i: number) => db.read(statement.sql, statement.params(i)),
            query: (i: number) => db.query(statement.sql, statement.params(i)),
          };
          const samples = await interleave(cases, { runs: ctx.runs, loops, seconds, label: statement.name, log: ctx.log });
          const base = { label: `bare pg.Pool, ${statement.name}, ${loops} loops`, samples: samples.bare };
          out.push(...figures(base.label, samples.bare, null));
          out.push(...figures(`router.read(), ${statement.name}, ${loops} loops`, samples.read, base));
          out.push(...figures(`router.query(), ${statement.name}, ${loops} loops`, samples.query, base));
        }
      }
      const after = await servedBy(db);
      const replicaReads = after.replica - before.replica;
      const primaryReads = after.primary - before.primary;
      ctx.log(`reads served by the replica: ${replicaReads}, by the primary: ${primaryReads}`);
      out.push({ metric: 'routed reads served by the primary', unit: '%', summary: summarize([(primaryReads / Math.max(1, replicaReads + primaryReads)) * 100]) });
    } finally {
      await bare.end();
      await close();
    }
    return out;
  },
};

/**
 * Write throughput: router.write() (which returns a read-your-writes token)
 * against a bare pg.Pool's INSERT at the primary, interleaved, 8 and 32 loops.
 */
export const routerWrites: Benchmark = {
  name: 'router-writes',
  description: 'router.write() with its token vs a bare pg.Pool INSERT at the primary, 8 and 32 loops; q/s, CPU/query, p50/p99',
  async run(ctx) {
    const seconds = ctx.quick ? 1 : 3;
    const { sandbox, db, password, close } = await startRouterBench('bench-writes');
    const primary = sandbox.primary;
    const bare = new pg.Pool({ host: primary.host, port: primary.port, user: 'postgres', password, database: 'postgres' });
    const out: Figure[] = [];
    try {
      await bare.query('CREATE TABLE bench_w (id bigserial PRIMARY KEY, v int)');
      const sql = 'INSERT INTO bench_w (v) VALUES ($1)';
      for (const loops of [8, 32]) {
        const cases = {
          bare: (i: number) => bare.query(sql, [i]),
          write: (i: number) => db.write(sql, [i]),
        };
        const samples = await interleave(cases, { runs: ctx.runs, loops, seconds, label: 'INSERT', log: ctx.log });
        const base = { label: `bare pg.Pool INSERT, ${loops} loops`, samples: samples.bare };
        out.push(...figures(base.label, samples.bare, null));
        out.push(...figures(`router.write() + token, ${loops} loops`, samples.write, base));
      }
    } finally {
      await bare.end();
      await close();
    }
    return out;
  },
};
