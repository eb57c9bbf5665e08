import type { NodeState, Topology } from '@pgreplica/protocol';
import type pg from 'pg';
import type { Classification } from './classifier.js';
import type { RouteReason } from './selection.js';
import type { Statement } from './statement.js';
import type { ConsistencyToken } from './tokens.js';

/** Per-call options of reads (and of `query()` when it classifies a read). */
export interface ReadOptions {
  /** Staleness bound for this call. @default defaults.maxLagMs */
  maxLagMs?: number;
  /** Read-your-writes: only a node known to have replayed this token serves the read. */
  after?: ConsistencyToken | null | undefined;
}

/** Per-call options of `query()`. */
export interface QueryOptions extends ReadOptions {
  /** Skip the classifier. */
  target?: 'primary' | 'replica';
}

/** Result of a write: the node-postgres result plus the read-your-writes token. */
export type WriteResult<R extends pg.QueryResultRow = pg.QueryResultRow> = pg.QueryResult<R> & { token: ConsistencyToken };

/** The statement API of a transaction. */
export interface TransactionClient {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
}

/** Options of `transaction()`. */
export interface TransactionOptions extends ReadOptions {
  /** A read-only transaction may run on a replica. @default false */
  readOnly?: boolean;
}

/** Where a call goes and why (`explain()`, `getReadTarget()`). */
export interface RouteDecision {
  nodeId: string | null;
  role: 'primary' | 'replica' | null;
  reason: RouteReason;
  /** `postgres://user@host:port/database`, no password. */
  target: string | null;
  classification?: Classification;
}

/** Per-node figures of `getMetrics()`. */
export interface NodeMetrics {
  id: string;
  target: string;
  role: NodeState['role'];
  status: NodeState['status'];
  reason: NodeState['reason'];
  lagMs: number | null;
  lagBytes: number | null;
  lastHealthCheckAt: string | null;
  consecutiveFailures: number;
  totalQueries: number;
  failedQueries: number;
  successRate: number;
  inFlight: number;
  latencyEwmaMs: number | null;
  bannedForMs: number;
  /** Message of the connection failure that last got the node banned (a read's or a read-only transaction's); write failures do not set it. */
  lastError: string | null;
}

/** Events of a {@link Router}. Hosts must listen to `error`, as with `pg.Pool`. */
export interface RouterEventMap {
  /** The topology the router routes by changed. */
  topology: [topology: Topology];
  /** The bus went stale (`active: true`, routing by the fallback) or fresh again. */
  fallback: [state: { active: boolean; mode: 'primary' | 'probe'; ageMs: number }];
  /** A background error: an idle pooled connection died. Never a query's error. Redis errors are only logged (debug): the bus reconnects by itself. */
  error: [err: Error];
}

/**
 * What a `Session` needs of its router. `Router` implements it; the
 * session depends on this interface, not on the router's module.
 */
export interface SessionHost {
  routeKind(sql: string): 'primary' | 'replica';
  read<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: Statement, params?: unknown[], options?: ReadOptions): Promise<pg.QueryResult<R>>;
  write<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: Statement, params?: unknown[]): Promise<WriteResult<R>>;
  transactionWithToken<T>(fn: (tx: TransactionClient) => Promise<T>, options?: TransactionOptions): Promise<{ value: T; token: ConsistencyToken | null }>;
}
