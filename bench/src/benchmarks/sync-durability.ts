import { startSandbox } from '@pgreplica/sandbox';
import pg from 'pg';
import { summarize } from '../stats.js';
import { type Benchmark, type Figure, withRatio } from '../types.js';
import { interleave } from './router-load.js';

/**
 * The write cost of `failover.durability: synchronous`: INSERT throughput on
 * the primary with `synchronous_standby_names = 'ANY 1 (r1, r2)'` (what the
 * worker keeps) and `synchronous_commit = on` — each commit waits for a
 * replica to flush it — against the same primary with commits not waiting
 * (`synchronous_commit = local`, what asynchronous durability gives), from
 * two bare pg.Pools in one run, interleaved; 8 and 32 loops.
 */
export const syncDurability: Benchmark = {
  name: 'sync-durability',
  description: 'INSERT q/s and p50/p99 with commits waiting for ANY 1 replica vs not waiting (asynchronous), 8 and 32 loops',
  async run(ctx) {
    const seconds = ctx.quick ? 1 : 3;
    const sandbox = await startSandbox({ replicas: 2 });
    const config = sandbox.primary.connectionConfig;
    const pool = (commit: 'on' | 'local') => new pg.Pool({ ...config, max: 32, options: `-c synchronous_commit=${commit}` });
    const sync = pool('on');
    const async = pool('local');
    const out: Figure[] = [];
    try {
      await sandbox.primary.query('CREATE TABLE durability (id bigserial PRIMARY KEY, v text)');
      await sandbox.primary.query(`ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (${sandbox.replicas.map((r) => r.slotName).join(', ')})'`);
      await sandbox.primary.query('SELECT pg_reload_conf()');
      for (let i = 0; (await sandbox.primary.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_replication WHERE sync_state = 'quorum'"))[0]!.n < 2; i++) {
        if (i > 100) throw new Error('the replicas never became quorum standbys');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const insert = "INSERT INTO durability (v) VALUES ('x')";
      for (const loops of [8, 32]) {
        const samples = await interleave(
          { asynchronous: () => async.query(insert), synchronous: () => sync.query(insert) },
          { runs: ctx.runs, loops, seconds, label: 'durability', log: ctx.log },
        );
        const base = (k: 'qps' | 'p50Ms' | 'p99Ms') => ({ metric: `asynchronous, ${loops} loops ${k}`, summary: summarize(samples.asynchronous.map((s) => s[k])) });
        for (const [k, unit] of [['qps', 'q/s'], ['p50Ms', 'ms'], ['p99Ms', 'ms']] as const) {
          const b = base(k);
          out.push({ metric: b.metric, unit, summary: b.summary });
          out.push(withRatio(`synchronous, ${loops} loops ${k}`, unit, summarize(samples.synchronous.map((s) => s[k])), b));
        }
      }
      return out;
    } finally {
      await Promise.all([sync.end(), async.end()]);
      await sandbox.stop();
    }
  },
};
