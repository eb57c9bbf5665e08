/** Summary of repeated measurements of one figure. */
export interface Summary {
  median: number;
  min: number;
  max: number;
  /** (max - min) / median, in percent: how much the runs disagree. */
  spreadPct: number;
  samples: number[];
}

/** The q-quantile (0..1) of `values` by linear interpolation. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const pos = (sorted.length - 1) * q;
  const lower = Math.floor(pos);
  const upper = Math.ceil(pos);
  return sorted[lower]! + (sorted[upper]! - sorted[lower]!) * (pos - lower);
}

/** Median, range and spread of repeated runs. */
export function summarize(samples: readonly number[]): Summary {
  const median = quantile(samples, 0.5);
  const min = Math.min(...samples);
  const max = Math.max(...samples);
  return { median, min, max, spreadPct: median === 0 ? 0 : ((max - min) / median) * 100, samples: [...samples] };
}
