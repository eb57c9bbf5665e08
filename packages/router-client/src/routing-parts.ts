import type { Executor } from './executor.js';
import type { RouterMetrics } from './metrics.js';
import type { RouterOptions } from './options.js';
import type { PoolSet } from './pool-set.js';
import type { ProcessToken } from './process-token.js';
import type { TokenBucket } from './token-bucket.js';
import type { TopologyView } from './topology-view.js';

/** What the read, write and transaction paths share; the router makes each part once and wires them. */
export interface RoutingParts {
  cluster: string;
  /** The caller's options; the few read on each call (`fallback`, `routing`, `defaults.consistency`) are read from here. */
  options: RouterOptions;
  view: TopologyView;
  pools: PoolSet;
  executor: Executor;
  metrics: RouterMetrics;
  token: ProcessToken;
  /** `defaults.maxLagMs`, resolved. */
  maxLagMs: number;
  /** `waitForLsnMs`, resolved. */
  waitForLsnMs: number;
  /** `maxWritePauseMs`, resolved. */
  maxWritePauseMs: number;
  /** Caps reads that fall back to the primary for lack of a replica (`fallbackBudget`). */
  fallbackBudget: TokenBucket;
  /** `fallbackBudget.waitMs`, resolved. */
  fallbackBudgetWaitMs: number;
  /** A replica refused a statement as a write (25006): the classifier was fooled (e.g. a function's catalog entry changed). */
  onReadOnlyRefusal?: (() => void) | undefined;
}
