/**
 * `npm run bench`: runs every benchmark, prints one table, and writes each
 * benchmark's figures as JSON to bench/results/<name>.json.
 *
 *   npm run bench -- [--runs N] [--quick] [name ...]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { busFanout } from './benchmarks/bus-fanout.js';
import { failoverBench } from './benchmarks/failover.js';
import { haproxyBench } from './benchmarks/haproxy.js';
import { monitorProbe } from './benchmarks/monitor-probe.js';
import { ormReads } from './benchmarks/orm-reads.js';
import { replicationLag } from './benchmarks/replication-lag.js';
import { routerBench } from './benchmarks/router.js';
import { routerFleet } from './benchmarks/router-fleet.js';
import { routerReads, routerWrites } from './benchmarks/router-throughput.js';
import { sandboxStartup } from './benchmarks/sandbox-startup.js';
import { syncDurability } from './benchmarks/sync-durability.js';
import type { Benchmark, Figure } from './types.js';

/** Every benchmark, in the order they run. Later issues add theirs here. */
const BENCHMARKS: readonly Benchmark[] = [sandboxStartup, replicationLag, monitorProbe, busFanout, routerBench, routerReads, routerWrites, ormReads, routerFleet, haproxyBench, failoverBench, syncDurability];

const resultsDir = join(dirname(dirname(fileURLToPath(import.meta.url))), 'results');

function format(value: number): string {
  if (!Number.isFinite(value)) return '-';
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(2);
}

function table(rows: { bench: string; figure: Figure }[]): string {
  const header = ['benchmark', 'metric', 'median', 'min', 'max', 'spread', 'unit', 'ratio vs baseline'];
  const lines = rows.map(({ bench, figure }) => [
    bench,
    figure.metric,
    format(figure.summary.median),
    format(figure.summary.min),
    format(figure.summary.max),
    `${figure.summary.spreadPct.toFixed(0)}%`,
    figure.unit,
    figure.ratio === undefined ? '' : `${figure.ratio.toFixed(2)}x ${figure.baseline!.metric}`,
  ]);
  const all = [header, ...lines];
  const widths = header.map((_, i) => Math.max(...all.map((l) => l[i]!.length)));
  return all.map((l) => l.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: { runs: { type: 'string' }, quick: { type: 'boolean' } },
    allowPositionals: true,
  });
  const runs = values.runs === undefined ? 3 : Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');
  const unknown = positionals.filter((p) => !BENCHMARKS.some((b) => b.name === p));
  if (unknown.length > 0) throw new Error(`unknown benchmark(s): ${unknown.join(', ')}; known: ${BENCHMARKS.map((b) => b.name).join(', ')}`);
  const selected = positionals.length === 0 ? BENCHMARKS : BENCHMARKS.filter((b) => positionals.includes(b.name));

  mkdirSync(resultsDir, { recursive: true });
  const rows: { bench: string; figure: Figure }[] = [];
  for (const bench of selected) {
    const log = (message: string) => process.stderr.write(`[${bench.name}] ${message}\n`);
    log(bench.description);
    const figures = await bench.run({ runs, quick: values.quick ?? false, log });
    const file = join(resultsDir, `${bench.name}.json`);
    writeFileSync(file, `${JSON.stringify({ name: bench.name, description: bench.description, runs, at: new Date().toISOString(), figures }, null, 2)}\n`);
    log(`wrote ${file}`);
    rows.push(...figures.map((figure) => ({ bench: bench.name, figure })));
  }
  process.stdout.write(`\n${table(rows)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
