import { join } from 'node:path';
import { runCommand, type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { quantile, summarize } from '../stats.js';
import { type Benchmark, withRatio } from '../types.js';

const SCALE = 5;
const CLIENTS = 4;

async function pgbench(sandbox: Sandbox, args: string[]): Promise<string> {
  const { primary } = sandbox;
  const { stdout } = await runCommand(
    join(sandbox.binaries.pgBinDir, 'pgbench'),
    ['-h', primary.host, '-p', String(primary.port), '-U', 'postgres', ...args, 'postgres'],
    { env: { PGPASSWORD: primary.connectionConfig.password as string }, timeoutMs: 300_000 },
  );
  return stdout;
}

function tpsOf(output: string): number {
  const match = /tps = ([\d.]+)/.exec(output);
  if (!match) throw new Error(`no tps in pgbench output: ${output}`);
  return Number(match[1]);
}

/** Runs pgbench for `seconds` and samples replay lag of every replica every 100 ms meanwhile. */
async function loadAndSample(sandbox: Sandbox, seconds: number): Promise<{ tps: number; lagBytes: number[]; lagMs: number[] }> {
  const lagBytes: number[] = [];
  const lagMs: number[] = [];
  let running = true;
  const sampler = (async () => {
    while (running) {
      if (sandbox.replicas.length > 0) {
        const rows = await sandbox.primary.query<{ bytes: string | null; ms: number | null }>(
          `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::text AS bytes,
                  (extract(epoch FROM replay_lag) * 1000)::float8 AS ms
             FROM pg_stat_replication`,
        );
        for (const row of rows) {
          if (row.bytes !== null) lagBytes.push(Number(row.bytes));
          lagMs.push(row.ms ?? 0);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  try {
    const output = await pgbench(sandbox, ['-c', String(CLIENTS), '-j', '2', '-T', String(seconds), '-n']);
    return { tps: tpsOf(output), lagBytes, lagMs };
  } finally {
    running = false;
    await sampler;
  }
}

/**
 * Replication lag of 2 streaming replicas under a pgbench TPC-B write load,
 * and the write throughput it costs: TPS with 2 replicas against a lone
 * primary with the same load in the same run.
 */
export const replicationLag: Benchmark = {
  name: 'replication-lag',
  description: `pgbench TPC-B (scale ${SCALE}, ${CLIENTS} clients); replay lag sampled every 100 ms; baseline: TPS of a lone primary`,
  async run(ctx) {
    const seconds = ctx.quick ? 3 : 10;
    const lone = await startSandbox({ replicas: 0, redis: false });
    const replicated = await startSandbox({ replicas: 2, redis: false });
    try {
      for (const sandbox of [lone, replicated]) await pgbench(sandbox, ['-i', '-s', String(SCALE), '-q']);
      await replicated.waitForReplay(replicated.replicas, 60_000);
      const loneTps: number[] = [];
      const replTps: number[] = [];
      const p50Bytes: number[] = [];
      const p99Bytes: number[] = [];
      const p50Ms: number[] = [];
      const p99Ms: number[] = [];
      for (let i = 0; i < ctx.runs; i++) {
        loneTps.push((await loadAndSample(lone, seconds)).tps);
        const run = await loadAndSample(replicated, seconds);
        replTps.push(run.tps);
        p50Bytes.push(quantile(run.lagBytes, 0.5));
        p99Bytes.push(quantile(run.lagBytes, 0.99));
        p50Ms.push(quantile(run.lagMs, 0.5));
        p99Ms.push(quantile(run.lagMs, 0.99));
        ctx.log(`run ${i + 1}/${ctx.runs}: tps lone ${loneTps.at(-1)!.toFixed(0)}, replicated ${run.tps.toFixed(0)}, lag p99 ${p99Bytes.at(-1)!.toFixed(0)} B / ${p99Ms.at(-1)!.toFixed(1)} ms`);
      }
      const baseline = { metric: 'pgbench tps, lone primary', summary: summarize(loneTps) };
      return [
        { metric: baseline.metric, unit: 'tps', summary: baseline.summary },
        withRatio('pgbench tps, 2 replicas streaming', 'tps', summarize(replTps), baseline),
        { metric: 'replay lag p50', unit: 'bytes', summary: summarize(p50Bytes) },
        { metric: 'replay lag p99', unit: 'bytes', summary: summarize(p99Bytes) },
        { metric: 'replay_lag p50', unit: 'ms', summary: summarize(p50Ms) },
        { metric: 'replay_lag p99', unit: 'ms', summary: summarize(p99Ms) },
      ];
    } finally {
      await Promise.allSettled([lone.stop(), replicated.stop()]);
    }
  },
};
