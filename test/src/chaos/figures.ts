import type { Violation } from './checker.js';
import type { HistoryEntry, WriteEntry } from './history.js';
import { FAULT_KINDS, type FaultKind } from './schedule.js';

/** What one fault cost the writers. */
export interface FaultFigures {
  kind: FaultKind;
  /** Longest time without an acknowledged write from the fault's start to the next fault (or the end): time to writes accepted again. Null: none after it. */
  writeGapMs: number | null;
  failedWrites: number;
  lostWrites: number;
  /** Acknowledged writes lost with a loss report (asynchronous durability's trade-off, not a violation). */
  reportedLost: number;
}

/**
 * Per fault of a seed: the longest gap between acknowledged writes in its
 * window (from its start to the next fault's start), the failed writes and
 * the acknowledged writes lost in that window (unreported, and reported:
 * `reported` lists those).
 */
export function faultFigures(history: readonly HistoryEntry[], violations: readonly Violation[], endAt: number, reported: readonly WriteEntry[] = []): FaultFigures[] {
  const windows: { kind: FaultKind; from: number; to: number }[] = [];
  for (const e of history) {
    if (e.type !== 'fault' || e.phase !== 'start' || windows.length > e.step) continue;
    const last = windows.at(-1);
    if (last) last.to = e.at;
    windows.push({ kind: e.kind, from: e.at, to: endAt });
  }
  const ackTimes = history.filter((e) => e.type === 'write').map((e) => e.at);
  return windows.map((w) => {
    const inside = ackTimes.filter((t) => t >= w.from && t <= w.to);
    let gap: number | null = inside.length === 0 ? null : (inside[0] ?? w.from) - w.from;
    for (let i = 1; i < inside.length && gap !== null; i++) gap = Math.max(gap, inside[i]! - inside[i - 1]!);
    return {
      kind: w.kind,
      writeGapMs: gap,
      failedWrites: history.filter((e) => e.type === 'write-failed' && e.at >= w.from && e.at <= w.to).length,
      lostWrites: violations.filter((v) => v.rule === 'acknowledged-write-lost' && v.at >= w.from && v.at <= w.to).length,
      reportedLost: reported.filter((r) => r.at >= w.from && r.at <= w.to).length,
    };
  });
}

/** Percentile (nearest rank) of sorted values. */
function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? null;
}

/** One row of the summary: a fault kind over every seed of a run. */
export interface KindSummary {
  kind: FaultKind;
  faults: number;
  writeGapP50Ms: number | null;
  writeGapP99Ms: number | null;
  /** Faults after which no write was acknowledged again. */
  neverBack: number;
  lostWrites: number;
  reportedLost: number;
  failedWrites: number;
}

/** Aggregates fault figures per kind (kinds never drawn are left out). */
export function summarize(figures: readonly FaultFigures[]): KindSummary[] {
  return FAULT_KINDS.flatMap((kind) => {
    const of = figures.filter((f) => f.kind === kind);
    if (of.length === 0) return [];
    const gaps = of.flatMap((f) => (f.writeGapMs === null ? [] : [f.writeGapMs])).sort((a, b) => a - b);
    return [
      {
        kind,
        faults: of.length,
        writeGapP50Ms: percentile(gaps, 50),
        writeGapP99Ms: percentile(gaps, 99),
        neverBack: of.length - gaps.length,
        lostWrites: of.reduce((sum, f) => sum + f.lostWrites, 0),
        reportedLost: of.reduce((sum, f) => sum + f.reportedLost, 0),
        failedWrites: of.reduce((sum, f) => sum + f.failedWrites, 0),
      },
    ];
  });
}

/** The summary as a fixed-width table. */
export function formatSummary(rows: readonly KindSummary[]): string {
  const head = ['fault kind', 'faults', 'writes back p50 ms', 'p99 ms', 'never back', 'acked lost', 'lost, reported', 'failed writes'];
  const body = rows.map((r) => [r.kind, String(r.faults), String(r.writeGapP50Ms ?? '-'), String(r.writeGapP99Ms ?? '-'), String(r.neverBack), String(r.lostWrites), String(r.reportedLost), String(r.failedWrites)]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), ...body.map(line)].join('\n');
}
