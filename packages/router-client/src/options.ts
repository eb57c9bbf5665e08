import type { NodeTag } from '@pgreplica/protocol';
import type { Registry } from 'prom-client';
import type { RedisSource } from './bus-client.js';
import type { ConnectionOptions, PoolOptions } from './pool-set.js';

/** A node given in the options: with no bus, the whole topology; with a bus, the seed used while Redis is down. */
export interface StaticNode {
  id: string;
  /** `postgres://host:port` (credentials in it are ignored: use `connection`) … */
  url?: string;
  /** … or host and port. */
  host?: string;
  port?: number;
  /** What the node is expected to be; probing corrects it. @default 'replica' */
  role?: 'primary' | 'replica';
  /** Lower wins. @default 100 */
  priority?: number;
  /** @default 1 */
  weight?: number;
  tags?: NodeTag[];
}

/** Minimal logger interface; a pino logger fits. */
export interface RouterLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Defaults applied to every read unless the call overrides them. */
export interface ReadDefaults {
  /**
   * Staleness bound for reads.
   * @default 30_000
   */
  maxLagMs?: number;
  /**
   * `read-your-writes` makes every router-level write raise the router's own
   * token and every read honour it (a process-wide session).
   * @default 'eventual'
   */
  consistency?: 'eventual' | 'read-your-writes';
}

/** Caps reads that fall back to the primary. */
export interface FallbackBudgetOptions {
  /** @default 200 */
  ratePerSec?: number;
  /** @default 50 */
  burst?: number;
  /** How long a read past the budget waits for a budget token before failing. @default 100 */
  waitMs?: number;
}

/** Options of {@link createRouter}. */
export interface RouterOptions {
  /** Cluster name on the bus. */
  cluster: string;
  /** The bus. Without it the router probes `nodes` itself (fallback 'probe' permanently). */
  redis?: RedisSource;
  /** Credentials and database for every node. */
  connection: ConnectionOptions;
  /** Seed or static nodes; required without `redis`. */
  nodes?: StaticNode[];
  /** Per-node pool options. @default { max: 10 } */
  pool?: PoolOptions;
  defaults?: ReadDefaults;
  /**
   * `classify`: `query()` sends reads to replicas; `explicit`: only `read()` does.
   * @default 'classify'
   */
  routing?: 'classify' | 'explicit';
  /**
   * Topology older than this switches to `fallback`. Unset (recommended), it is
   * derived from the monitor's heartbeat, which every snapshot carries: 3
   * heartbeats (15 s with the monitor's default 5 s). A value below that is
   * raised to it, with an `error` event.
   * @default 3 × the monitor's heartbeatMs
   */
  staleAfterMs?: number;
  /** What to do with a stale bus. @default 'primary' */
  fallback?: 'primary' | 'probe';
  /** HMAC key of the bus; unsigned or badly signed events are dropped. */
  busKey?: string;
  /**
   * How far the clocks of the monitor's host and this one may differ. An
   * event published more than `staleAfterMs` + this ago (a signed snapshot
   * replayed into Redis), or more than this in the future, is dropped and
   * counted (`expired`).
   * @default 30_000
   */
  maxClockSkewMs?: number;
  /** Silent when absent. */
  logger?: RouterLogger;
  /** prom-client registry to register metrics in; a private one when absent (never the global one). */
  registry?: Registry;
  /** How long writes wait for a switchover to finish. @default 5_000 */
  maxWritePauseMs?: number;
  /** Read-your-writes: how long a read waits for each candidate replica to replay its token before trying the next (the primary last). @default 0 */
  waitForLsnMs?: number;
  fallbackBudget?: FallbackBudgetOptions;
  /** Local ban of a replica after a connection failure: first and longest. @default { baseMs: 500, maxMs: 30_000 } */
  ban?: { baseMs?: number; maxMs?: number };
  /** How long `ready()` waits for a first topology. @default 10_000 */
  readyTimeoutMs?: number;
  /** Interval of the router's own probes (probe mode). @default 1_000 */
  probeIntervalMs?: number;
  /** Function names (lower case) the classifier must send to the primary, e.g. yours that write. */
  primaryFunctions?: string[];
  /**
   * Read the primary's catalog (at `ready()`, every minute, and after a
   * replica refuses a statement as a write) so `query()` sends calls of
   * `VOLATILE` functions outside `pg_catalog` to the primary; `STABLE` and
   * `IMMUTABLE` ones may run on a replica. Only with `routing: 'classify'`.
   * @default true
   */
  functionCatalog?: boolean;
}

/** Defaults of {@link RouterOptions}. */
export const DEFAULT_ROUTER_OPTIONS = {
  pool: { max: 10 },
  defaults: { maxLagMs: 30_000, consistency: 'eventual' },
  routing: 'classify',
  fallback: 'primary',
  maxWritePauseMs: 5_000,
  waitForLsnMs: 0,
  fallbackBudget: { ratePerSec: 200, burst: 50, waitMs: 100 },
  ban: { baseMs: 500, maxMs: 30_000 },
  readyTimeoutMs: 10_000,
  probeIntervalMs: 1_000,
  functionCatalog: true,
} as const;

/** Shortest accepted staleness bound: the monitor publishes a snapshot every heartbeatMs (≥ 1 s typically). */
export const MIN_STALE_AFTER_MS = 500;
