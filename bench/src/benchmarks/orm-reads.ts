import { pgreplicaDrizzle } from '@pgreplica/adapter-drizzle';
import { pgreplicaKnex } from '@pgreplica/adapter-knex';
import { pgreplicaDialect } from '@pgreplica/adapter-kysely';
import { between, eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { integer, pgTable } from 'drizzle-orm/pg-core';
import knexFactory, { type Knex } from 'knex';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { summarize } from '../stats.js';
import type { Benchmark, Figure } from '../types.js';
import { interleave, type LoadSample, servedBy, startRouterBench } from './router-load.js';

const ACCOUNTS = 100_000;
const LOOPS = 16;

const accounts = pgTable('pgbench_accounts', { aid: integer('aid').primaryKey(), bid: integer('bid'), abalance: integer('abalance') });
interface Database {
  pgbench_accounts: { aid: number; bid: number; abalance: number };
}

/** One ORM's two statements, as its query builder writes them. */
interface OrmReads {
  point(aid: number): Promise<unknown>;
  range(aid: number): Promise<unknown>;
  close(): Promise<void>;
}

function drizzleReads(db: ReturnType<typeof drizzle>): OrmReads {
  return {
    point: (aid) => db.select({ abalance: accounts.abalance }).from(accounts).where(eq(accounts.aid, aid)),
    range: (aid) => db.select().from(accounts).where(between(accounts.aid, aid, aid + 9)),
    close: async () => {},
  };
}

function kyselyReads(db: Kysely<Database>): OrmReads {
  return {
    point: (aid) => db.selectFrom('pgbench_accounts').select('abalance').where('aid', '=', aid).execute(),
    range: (aid) => db.selectFrom('pgbench_accounts').selectAll().where('aid', '>=', aid).where('aid', '<=', aid + 9).execute(),
    close: async () => {},
  };
}

function knexReads(db: Knex): OrmReads {
  return {
    point: (aid) => db('pgbench_accounts').select('abalance').where({ aid }),
    range: (aid) => db('pgbench_accounts').select('*').whereBetween('aid', [aid, aid + 9]),
    close: () => db.destroy(),
  };
}

const qpsFigure = (metric: string, samples: LoadSample[], base?: { metric: string; samples: LoadSample[] }): Figure => {
  const summary = summarize(samples.map((s) => s.qps));
  if (!base) return { metric, unit: 'q/s', summary };
  const b = summarize(base.samples.map((s) => s.qps));
  return { metric, unit: 'q/s', summary, baseline: { metric: base.metric, median: b.median }, ratio: summary.median / b.median };
};

/**
 * Each ORM adapter's read throughput through the router against the same
 * ORM on a bare pg.Pool at the replica, interleaved run by run in one
 * process: a point read and a 10-row range read of pgbench_accounts (100,000
 * rows) written in the ORM's query builder, 16 concurrent loops. The router
 * and the bare pool have the defaults of the example config (pool max 10);
 * the monitor runs in its own process with its documented defaults.
 */
export const ormReads: Benchmark = {
  name: 'orm-reads',
  description: 'Drizzle, Kysely and Knex reads through the router vs the same ORM on a bare pg.Pool at the replica: point and 10-row range reads, 16 loops; q/s and ratio',
  async run(ctx) {
    const seconds = ctx.quick ? 1 : 2;
    const { sandbox, db: router, password, close } = await startRouterBench('bench-orm');
    const replica = sandbox.replicas[0]!;
    const bare = () => new pg.Pool({ host: replica.host, port: replica.port, user: 'postgres', password, database: 'postgres', max: 10 });
    const pools: pg.Pool[] = [];
    const out: Figure[] = [];
    const orms: { name: string; routed: OrmReads; bare: OrmReads }[] = [];
    try {
      await sandbox.primary.query('CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84))');
      await sandbox.primary.query(`INSERT INTO pgbench_accounts SELECT g, 1, g % 1000, '' FROM generate_series(1, ${ACCOUNTS}) g`);
      await sandbox.primary.query('ANALYZE pgbench_accounts');
      await sandbox.waitForReplay();
      const fresh = () => {
        const pool = bare();
        pools.push(pool);
        return pool;
      };
      orms.push(
        { name: 'Drizzle', routed: drizzleReads(pgreplicaDrizzle(router, { pool: { endRouter: false } })), bare: drizzleReads(drizzle({ client: fresh() })) },
        {
          name: 'Kysely',
          routed: kyselyReads(new Kysely<Database>({ dialect: pgreplicaDialect(router, { pool: { endRouter: false } }) })),
          bare: kyselyReads(new Kysely<Database>({ dialect: new PostgresDialect({ pool: fresh() }) })),
        },
        { name: 'Knex', routed: knexReads(pgreplicaKnex(router)), bare: knexReads(knexFactory({ client: 'pg', connectionPool: fresh() } as Knex.Config)) },
      );
      const before = await servedBy(router);
      for (const orm of orms) {
        for (const statement of ['point', 'range'] as const) {
          const cases = {
            bare: (i: number) => orm.bare[statement]((i * 7919) % (ACCOUNTS - 10) + 1),
            router: (i: number) => orm.routed[statement]((i * 7919) % (ACCOUNTS - 10) + 1),
          };
          const samples = await interleave(cases, { runs: ctx.runs, loops: LOOPS, seconds, label: `${orm.name} ${statement}`, log: ctx.log });
          const what = statement === 'point' ? 'point read' : '10-row range read';
          const base = { metric: `${orm.name} on a bare pg.Pool, ${what}`, samples: samples.bare };
          out.push(qpsFigure(base.metric, samples.bare));
          out.push(qpsFigure(`${orm.name} through the router, ${what}`, samples.router, base));
          // Each run measures both back to back: the ratio within a run is less exposed to the machine's load drifting between runs.
          const paired = samples.router.map((s, k) => s.qps / samples.bare[k]!.qps);
          out.push({ metric: `${orm.name}, ${what}: router / bare, paired by run`, unit: 'x', summary: summarize(paired) });
          // The client's CPU per query: what the router adds, less exposed to the load of the rest of the machine than q/s.
          const cpu = (l: LoadSample[]) => summarize(l.map((x) => x.cpuUsPerQuery));
          const bareCpu = cpu(samples.bare);
          const routerCpu = cpu(samples.router);
          out.push({ metric: `${orm.name}, ${what}: client CPU, bare`, unit: 'µs/query', summary: bareCpu });
          out.push({
            metric: `${orm.name}, ${what}: client CPU, router`,
            unit: 'µs/query',
            summary: routerCpu,
            baseline: { metric: `${orm.name}, ${what}: client CPU, bare`, median: bareCpu.median },
            ratio: routerCpu.median / bareCpu.median,
          });
        }
      }
      const after = await servedBy(router);
      const replicaReads = after.replica - before.replica;
      const primaryReads = after.primary - before.primary;
      ctx.log(`routed reads served by the replica: ${replicaReads}, by the primary: ${primaryReads}`);
      out.push({ metric: 'routed ORM reads served by the primary', unit: '%', summary: summarize([(primaryReads / Math.max(1, replicaReads + primaryReads)) * 100]) });
    } finally {
      for (const orm of orms) {
        await orm.routed.close().catch(() => {});
        await orm.bare.close().catch(() => {});
      }
      await Promise.all(pools.map((p) => p.end().catch(() => {})));
      await close();
    }
    return out;
  },
};
