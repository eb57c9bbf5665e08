import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkHistory, type FinalState, lostWrites, reportOf, type Violation } from './checker.js';
import { ChaosCluster, ROUTERS } from './cluster.js';
import { injectFault } from './faults.js';
import { type FaultFigures, faultFigures } from './figures.js';
import { appendEntry, formatEntries, type HistoryEntry, readHistory, type WriteEntry } from './history.js';
import { drawSchedule, type Schedule } from './schedule.js';

/** How long the cluster may take to settle after the last fault: one primary, every node streaming, writes back. */
const CONVERGE_MS = 60_000;

/** The outcome of one seed. */
export interface SeedResult {
  seed: number;
  schedule: Schedule;
  violations: Violation[];
  figures: FaultFigures[];
  /** Acknowledged writes lost with a loss report (asynchronous durability only). */
  reportedLost: { id: number; node: string; at: number }[];
  wallMs: number;
  dir: string;
  /** The command that replays it. */
  replay: string;
  /** The history around each violation, ready to print. */
  report: string;
}

/** Whether the state is settled: exactly one node takes writes, the others stream from it, the bus counted every promotion. */
function settled(state: FinalState): boolean {
  return state.writable.length === 1 && Object.values(state.streaming).every(Boolean) && (state.bus === null || state.bus.primaryChanged === state.bus.promotions);
}

/**
 * Runs one seed: a fresh cluster, a warm-up, the schedule's faults one after
 * the other (each undone before the next), a wait for the cluster to settle,
 * then the routers stopped and the history checked against the final state.
 * Everything started is stopped, even on failure.
 */
export async function runSeed(seed: number, rootDir: string): Promise<SeedResult> {
  const started = Date.now();
  const schedule = drawSchedule(seed);
  const dir = join(rootDir, `seed-${seed}`);
  mkdirSync(dir, { recursive: true });
  const faultFile = join(dir, 'faults.jsonl');
  const cluster = await ChaosCluster.start(dir, schedule.workers);
  let history: HistoryEntry[] = [];
  let violations: Violation[] = [];
  let healedAt = Date.now();
  let endAt = Date.now();
  let failure: unknown;
  let reported: WriteEntry[] = [];
  try {
    await sleep(1_000);
    for (const [i, step] of schedule.steps.entries()) {
      await sleep(step.delayMs);
      await injectFault(cluster, step, (phase, detail) => appendEntry(faultFile, { type: 'fault', kind: step.kind, step: i, phase, at: Date.now(), detail }));
    }
    await cluster.heal();
    healedAt = Date.now();
    const files = [faultFile, ...Array.from({ length: ROUTERS }, (_, i) => cluster.routerHistory(i))];
    const deadline = Date.now() + CONVERGE_MS;
    // Settled twice in a row, a second apart: a fence or rejoin in flight would show.
    for (let stable = 0; stable < 2 && Date.now() < deadline; ) {
      // A fence still in flight at the heal (a failover's hook powering off a node
      // that woke up) leaves a node down after it: the operator brings it back too.
      await cluster.heal().catch((err: unknown) => process.stderr.write(`[chaos] seed ${seed}: healing again failed (retrying): ${(err as Error).message}\n`));
      // A node the fence kills under the probe's query is not settled yet.
      const state = await cluster.state(false).catch(() => null);
      if (state === null) {
        stable = 0;
        await sleep(500);
        continue;
      }
      const writesBack = readHistory(files.slice(1)).some((e) => e.type === 'write' && e.sentAt >= healedAt);
      stable = settled(state) && writesBack ? stable + 1 : 0;
      await sleep(stable > 0 ? 1_000 : 500);
    }
    await cluster.stopRouters();
    endAt = Date.now();
    const final = await cluster.state(true);
    history = readHistory(files);
    writeFileSync(join(dir, 'history.jsonl'), history.map((e) => JSON.stringify(e)).join('\n'));
    violations = checkHistory(history, final, { healedAt, endAt });
    reported = final.durability === 'async' ? lostWrites(history, final).filter((w) => reportOf(w, final)) : [];
    const lost = lostWrites(history, final).map((w) => w.id);
    writeFileSync(join(dir, 'final.json'), JSON.stringify({ ...final, ledgerIds: final.ledgerIds.size, lost, violations }, null, 2));
  } catch (err) {
    failure = err;
    throw err;
  } finally {
    // What the bus and the workers said, for a post-mortem of the seed (best effort: never instead of the cleanup).
    try {
      writeFileSync(join(dir, 'bus.jsonl'), cluster.bus.events.map((e) => JSON.stringify(e)).join('\n'));
      for (const [i, w] of cluster.workers.entries()) writeFileSync(join(dir, `worker${i + 1}.log`), w.output());
    } catch (err) {
      process.stderr.write(`[chaos] seed ${seed}: could not keep the bus and worker logs: ${(err as Error).message}\n`);
    }
    // A failure to clean up must not hide the failure that cut the seed short.
    await cluster.close().catch((closeErr: unknown) => {
      if (failure === undefined) throw closeErr;
      process.stderr.write(`[chaos] seed ${seed}: cleaning up after the failure also failed: ${(closeErr as Error).message}\n`);
    });
  }
  const t0 = history[0]?.at ?? started;
  const report = violations
    .slice(0, 5)
    .map((v) => `✗ ${v.rule}: ${v.detail}\n${formatEntries(history.filter((e) => Math.abs(e.at - v.at) <= 1_500 || e.type === 'fault'), t0)}`)
    .join('\n\n');
  return {
    seed,
    schedule,
    violations,
    figures: faultFigures(history, violations, endAt, reported),
    reportedLost: reported.map((w) => ({ id: w.id, node: w.node, at: w.at })),
    wallMs: Date.now() - started,
    dir,
    replay: `npm run chaos -- --seed ${seed}`,
    report,
  };
}
