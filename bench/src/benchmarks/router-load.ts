import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRouter, type Router } from '@pgreplica/router-client';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { quantile } from '../stats.js';

/** One closed-loop measurement: throughput, client CPU per query, latency percentiles. */
export interface LoadSample {
  qps: number;
  /** Client process CPU (user + system) per completed query, µs. */
  cpuUsPerQuery: number;
  p50Ms: number;
  p99Ms: number;
}

/**
 * `loops` concurrent loops each awaiting `op` back to back for `seconds`
 * (after a short warm-up). CPU is `process.cpuUsage()` over the window: the
 * whole client process, so a benchmark keeps everything else (the monitor)
 * out of it.
 */
export async function closedLoop(loops: number, seconds: number, op: (i: number) => Promise<unknown>): Promise<LoadSample> {
  const warmUntil = performance.now() + 300;
  await Promise.all(
    Array.from({ length: loops }, async (_, l) => {
      let i = l;
      while (performance.now() < warmUntil) {
        await op(i);
        i += loops;
      }
    }),
  );
  const latencies: number[] = [];
  let count = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  const until = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: loops }, async (_, l) => {
      let i = l;
      while (performance.now() < until) {
        const t = performance.now();
        await op(i);
        latencies.push(performance.now() - t);
        i += loops;
        count++;
      }
    }),
  );
  const elapsedS = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { qps: count / elapsedS, cpuUsPerQuery: (used.user + used.system) / count, p50Ms: quantile(latencies, 0.5), p99Ms: quantile(latencies, 0.99) };
}

/**
 * Runs every case `runs` times, interleaved run by run and in a rotating
 * order (no case always first, or always right after another), logging each
 * run's q/s and CPU per query; returns each case's samples.
 */
export async function interleave<K extends string>(
  cases: Record<K, (i: number) => Promise<unknown>>,
  options: { runs: number; loops: number; seconds: number; label: string; log: (message: string) => void },
): Promise<Record<K, LoadSample[]>> {
  const order = Object.keys(cases) as K[];
  const samples = Object.fromEntries(order.map((name) => [name, [] as LoadSample[]])) as Record<K, LoadSample[]>;
  for (let run = 0; run < options.runs; run++) {
    for (let k = 0; k < order.length; k++) {
      const name = order[(k + run) % order.length]!;
      samples[name].push(await closedLoop(options.loops, options.seconds, cases[name]));
    }
    const figures = order.map((name) => `${name} ${samples[name].at(-1)!.qps.toFixed(0)} q/s ${samples[name].at(-1)!.cpuUsPerQuery.toFixed(1)} µs`);
    options.log(`${options.label}, ${options.loops} loops, run ${run + 1}/${options.runs}: ${figures.join('; ')}`);
  }
  return samples;
}

/**
 * A monitor in its own process (so its CPU is not the client's), with the
 * documented defaults of deploy/monitor/monitor.example.yaml: probe every
 * 1000 ms, a snapshot at least every 5000 ms.
 */
export function spawnMonitor(sandbox: Sandbox, cluster: string): { child: ChildProcess; stop: () => Promise<void> } {
  const dir = mkdtempSync(join(tmpdir(), 'pgreplica-bench-'));
  const configPath = join(dir, 'monitor.json');
  writeFileSync(
    configPath,
    JSON.stringify({
      cluster,
      redis: { url: sandbox.redis!.url },
      nodes: sandbox.nodes.map((n, i) => ({ id: n.id, host: n.host, port: n.port, priority: i })),
      database: { user: 'postgres', passwordEnv: 'PGREPLICA_DB_PASSWORD' },
      monitor: { probeIntervalMs: 1_000, heartbeatMs: 5_000, http: { port: 0 } },
    }),
  );
  const main = fileURLToPath(new URL('../../../services/monitor/dist/main.js', import.meta.url));
  const child = spawn(process.execPath, [main, '--config', configPath], {
    env: { ...process.env, PGREPLICA_DB_PASSWORD: sandbox.primary.connectionConfig.password as string, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    stop: async () => {
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000).unref())]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A sandbox with one replica, a monitor process with the documented defaults, and a router with its defaults. */
export async function startRouterBench(cluster: string): Promise<{ sandbox: Sandbox; db: Router; password: string; close: () => Promise<void> }> {
  const sandbox = await startSandbox({ replicas: 1 });
  const password = sandbox.primary.connectionConfig.password as string;
  const monitor = spawnMonitor(sandbox, cluster);
  const db = createRouter({ cluster, redis: sandbox.redis!.url, connection: { user: 'postgres', password, database: 'postgres' } });
  db.on('error', () => {});
  const close = async () => {
    await db.close();
    await monitor.stop();
    await sandbox.stop();
  };
  try {
    await db.ready();
    const deadline = Date.now() + 30_000;
    while (db.getReadTarget().role !== 'replica' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    if (db.getReadTarget().role !== 'replica') throw new Error(`no replica to read from: ${JSON.stringify(db.getReadTarget())}`);
  } catch (err) {
    await close();
    throw err;
  }
  return { sandbox, db, password, close };
}

/** Reads routed to a replica and to the primary since the router started (from its metrics). */
export async function servedBy(db: Router): Promise<{ replica: number; primary: number }> {
  const metric = await db.metrics.registry.getSingleMetric('pgreplica_router_queries_total')!.get();
  const out = { replica: 0, primary: 0 };
  for (const v of metric.values) {
    const role = v.labels.role as 'replica' | 'primary';
    if (v.labels.reason !== 'primary:write' && v.labels.reason !== 'primary:classified-write') out[role] += v.value;
  }
  return out;
}
