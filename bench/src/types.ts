import type { Summary } from './stats.js';

/** One reported figure: the measured summary and, where it has one, its ratio against a baseline from the same run. */
export interface Figure {
  metric: string;
  unit: string;
  summary: Summary;
  /** Which figure the ratio is against, and that figure's median. */
  baseline?: { metric: string; median: number };
  /** summary.median / baseline.median */
  ratio?: number;
}

/** Settings every benchmark receives. */
export interface BenchContext {
  /** Repetitions of each measurement. */
  runs: number;
  /** Shorter measurements, for a smoke run. */
  quick: boolean;
  log: (message: string) => void;
}

/** A benchmark module's default shape. */
export interface Benchmark {
  name: string;
  description: string;
  run(ctx: BenchContext): Promise<Figure[]>;
}

/** A figure with its ratio against `baseline`. */
export function withRatio(metric: string, unit: string, summary: Summary, baseline: { metric: string; summary: Summary }): Figure {
  return {
    metric,
    unit,
    summary,
    baseline: { metric: baseline.metric, median: baseline.summary.median },
    ratio: summary.median / baseline.summary.median,
  };
}
