import type { NodeState } from '@pgreplica/protocol';
import type pg from 'pg';
import { isConnectionError } from './errors.js';
import type { RouterMetrics } from './metrics.js';
import { NodeStats } from './node-stats.js';
import type { RouterLogger } from './options.js';
import type { PoolSet } from './pool-set.js';
import type { TransactionClient } from './router-types.js';
import type { RouteReason } from './selection.js';
import type { Statement } from './statement.js';

/** The role a node served a call in (a metric label). */
export type ServingRole = 'primary' | 'replica';

/**
 * The primary's WAL position after a commit: the read-your-writes token's
 * LSN. The insert position, not `pg_current_wal_lsn()` (the write position):
 * with `synchronous_commit = off` the commit record may not be written out
 * yet, and a token below it would let a replica that has not replayed the
 * commit serve the read.
 */
export const INSERT_LSN_SQL = 'SELECT pg_current_wal_insert_lsn()::text AS lsn';

/** What {@link queryThenLsn} returns: the statement's result and, unless reading it failed, the insert position after it. */
export interface ResultWithLsn<R extends pg.QueryResultRow> {
  result: pg.QueryResult<R>;
  /** Null when the position query failed (the statement's own outcome stands). */
  lsn: string | null;
  /** The connection error that failed the position query, if any: release the client with it. */
  broken: Error | undefined;
}

/** `client.query(textOrConfig, values, callback)`: node-postgres takes a `QueryConfig` there too; its typings only a string. */
type QueryWithCallback = (statement: Statement, values: unknown[] | undefined, callback: (err: Error | undefined, result: never) => void) => void;

type PipelinedClient = pg.PoolClient & { pipeline?: boolean; connection?: { stream?: { cork?: () => void; uncork?: () => void } } };

/**
 * Runs `sql`, then `SELECT pg_current_wal_insert_lsn()`, on one round trip:
 * node-postgres (8.23+) pipeline mode sends both at once, each with its own
 * Sync, so the statement commits (autocommit, or a `COMMIT`) before the
 * position is read, exactly as if they ran one after the other. Older
 * node-postgres without pipeline mode runs them one after the other.
 *
 * Rejects only with the statement's error. Once the statement succeeded it
 * committed: a failure of the position query then yields `lsn: null`, never
 * an error.
 */
export async function queryThenLsn<R extends pg.QueryResultRow>(client: pg.PoolClient, sql: Statement, params?: unknown[]): Promise<ResultWithLsn<R>> {
  const { result, follow, broken } = await queryThen<R, { lsn: string }>(client, sql, params, INSERT_LSN_SQL);
  return { result, lsn: follow?.rows[0]?.lsn ?? null, broken };
}

/**
 * Runs `sql`, then the statement `follow`, on one round trip (node-postgres
 * pipeline mode, each with its own Sync: exactly as if they ran one after
 * the other; without pipeline mode they do). Rejects only with `sql`'s
 * error; a failure of `follow` yields `follow: null` (and `broken`, when it
 * was the connection's).
 */
export async function queryThen<R extends pg.QueryResultRow, F extends pg.QueryResultRow>(
  client: pg.PoolClient,
  sql: Statement,
  params: unknown[] | undefined,
  follow: string,
): Promise<{ result: pg.QueryResult<R>; follow: pg.QueryResult<F> | null; broken: Error | undefined }> {
  const c = client as PipelinedClient;
  if (!('pipeline' in c)) {
    const result = await client.query<R>(sql, params);
    try {
      return { result, follow: await client.query<F>(follow), broken: undefined };
    } catch (err) {
      return { result, follow: null, broken: isConnectionError(err) ? (err as Error) : undefined };
    }
  }
  const wasPipelined = c.pipeline;
  c.pipeline = true;
  // One write for both: the statement's messages and the follow-up go out in one packet.
  const stream = c.connection?.stream;
  stream?.cork?.();
  let statement: Promise<pg.QueryResult<R>>;
  let second: Promise<pg.QueryResult<F>>;
  try {
    statement = client.query<R>(sql, params);
    second = client.query<F>(follow);
  } finally {
    stream?.uncork?.();
  }
  // Settled below in every case; this only keeps an early rejection from counting as unhandled.
  second.catch(() => {});
  try {
    const result = await statement;
    try {
      return { result, follow: await second, broken: undefined };
    } catch (err) {
      return { result, follow: null, broken: isConnectionError(err) ? (err as Error) : undefined };
    }
  } finally {
    // Leave pipeline mode only once nothing is in flight on the connection.
    await second.catch(() => {});
    c.pipeline = wasPipelined;
  }
}

/**
 * Runs statements and transactions on a node's client, and keeps the books
 * of every routed call in one place: the in-flight count, latency and outcome
 * in the node's {@link NodeStats}, the query counter and duration histogram,
 * and whether a failure was the connection's (the node's) or the statement's.
 * Reads, writes and transactions differ only where they always have: what the
 * latency covers, whether a statement's SQL error counts as a failed query
 * (reads only), whether the duration is observed (not for transactions), and
 * that a read's connection failure bans the node.
 */
export class Executor {
  /** What this router has seen of each node, by node id (ranking reads it). */
  readonly stats = new Map<string, NodeStats>();
  readonly #pools: PoolSet;
  readonly #metrics: RouterMetrics;
  readonly #log: RouterLogger;
  readonly #ban: { baseMs: number; maxMs: number };

  constructor(pools: PoolSet, metrics: RouterMetrics, log: RouterLogger, ban: { baseMs: number; maxMs: number }) {
    this.#pools = pools;
    this.#metrics = metrics;
    this.#log = log;
    this.#ban = ban;
  }

  /** The stats of a node, created on first use. */
  statsOf(id: string): NodeStats {
    let stats = this.stats.get(id);
    if (!stats) {
      stats = new NodeStats();
      this.stats.set(id, stats);
    }
    return stats;
  }

  /** Bans a node locally after a connection failure (jittered, exponential). */
  ban(node: NodeState, err: unknown): void {
    const ms = this.statsOf(node.id).ban(Date.now(), this.#ban.baseMs, this.#ban.maxMs);
    this.statsOf(node.id).lastError = (err as Error).message;
    this.#metrics.bans.inc({ node: node.id });
    this.#log.warn({ nodeId: node.id, banMs: ms, err }, 'connection failure: node banned locally');
  }

  /**
   * A read: one statement on a pooled connection of `node`. The latency is the
   * statement's; a connection failure bans the node (waiting for a free pooled
   * client is not one). On an error, `onError` may take over — its promise
   * settles the read — or return null to reject with the error as it is.
   *
   * Callbacks, not promises, inside: this is the per-read path, and it costs
   * what `pg.Pool.query()` costs (one promise) plus the books.
   */
  read<R extends pg.QueryResultRow>(
    node: NodeState,
    role: ServingRole,
    reason: RouteReason,
    sql: Statement,
    params: unknown[] | undefined,
    onError?: (err: Error) => Promise<pg.QueryResult<R>> | null,
  ): Promise<pg.QueryResult<R>> {
    const stats = this.statsOf(node.id);
    const pool = this.#pools.pool(node);
    stats.inFlight++;
    let started = performance.now();
    return new Promise((resolve, reject) => {
      const fail = (err: Error, client: pg.PoolClient | undefined) => {
        stats.inFlight--;
        const connection = isConnectionError(err);
        client?.release(connection ? err : undefined);
        this.#failed(stats, node.id, role, reason, performance.now() - started, connection, true);
        if (connection) this.ban(node, err);
        let next: Promise<pg.QueryResult<R>> | null = null;
        try {
          next = onError?.(err) ?? null;
        } catch (e) {
          reject(e);
          return;
        }
        if (next) resolve(next);
        else reject(err);
      };
      pool.connect((connectError, client) => {
        if (connectError || !client) {
          fail(connectError ?? new Error('pg-pool returned no client'), undefined);
          return;
        }
        // Latency is the statement's: opening a connection is not the node being slow.
        started = performance.now();
        (client.query as QueryWithCallback)(sql, params, (queryError: Error | undefined, result: pg.QueryResult<R>) => {
          if (queryError) {
            fail(queryError, client);
            return;
          }
          stats.inFlight--;
          client.release();
          this.#succeeded(stats, node.id, role, reason, performance.now() - started, true);
          resolve(result);
        });
      });
    });
  }

  /**
   * A write: one statement on `client`, a connection to the primary fenced for
   * an epoch; with `wantLsn`, also the insert position after it, on the same
   * round trip ({@link queryThenLsn}; null when it could not be read — the
   * write still succeeded). The latency runs from `startedMs` (before the
   * connection was taken and fenced). Releases the client; the statement's
   * errors are rethrown as they are.
   */
  async write<R extends pg.QueryResultRow>(
    primary: NodeState,
    client: pg.PoolClient,
    startedMs: number,
    reason: RouteReason,
    sql: Statement,
    params: unknown[] | undefined,
    wantLsn: boolean,
  ): Promise<{ result: pg.QueryResult<R>; lsn: string | null }> {
    const stats = this.statsOf(primary.id);
    stats.inFlight++;
    try {
      let result: pg.QueryResult<R>;
      let lsn: string | null = null;
      let broken: Error | undefined;
      if (wantLsn) ({ result, lsn, broken } = await queryThenLsn<R>(client, sql, params));
      else result = await client.query<R>(sql, params);
      client.release(broken);
      this.#succeeded(stats, primary.id, 'primary', reason, performance.now() - startedMs, true);
      return { result, lsn };
    } catch (err) {
      const connection = isConnectionError(err);
      client.release(connection ? (err as Error) : undefined);
      this.#failed(stats, primary.id, 'primary', reason, performance.now() - startedMs, connection, false);
      throw err;
    } finally {
      stats.inFlight--;
    }
  }

  /**
   * A transaction on `client`: `begin`, `fn`, then `COMMIT` — with `wantLsn`,
   * together with the insert position after it, on one round trip; rolls
   * back when `fn` throws. Once `COMMIT` succeeded nothing throws: `lsn` is
   * null when the position could not be read. Releases the client (destroyed
   * when its connection broke or the rollback failed); errors before the
   * commit are rethrown as they are.
   */
  async transaction<T>(
    node: NodeState,
    role: ServingRole,
    client: pg.PoolClient,
    begin: string,
    fn: (tx: TransactionClient) => Promise<T>,
    wantLsn = false,
  ): Promise<{ value: T; lsn: string | null }> {
    const stats = this.statsOf(node.id);
    stats.inFlight++;
    const started = performance.now();
    let broken: Error | undefined;
    try {
      await client.query(begin);
      const value = await fn({ query: (sql, params) => client.query(sql, params) });
      let lsn: string | null = null;
      if (wantLsn) ({ lsn, broken } = await queryThenLsn(client, 'COMMIT'));
      else await client.query('COMMIT');
      this.#succeeded(stats, node.id, role, 'primary:transaction', performance.now() - started, false);
      return { value, lsn };
    } catch (err) {
      if (isConnectionError(err)) broken = err as Error;
      else await client.query('ROLLBACK').catch((e: unknown) => (broken = e as Error));
      this.#failed(stats, node.id, role, 'primary:transaction', performance.now() - started, Boolean(broken), false);
      throw err;
    } finally {
      stats.inFlight--;
      client.release(broken);
    }
  }

  #succeeded(stats: NodeStats, nodeId: string, role: ServingRole, reason: RouteReason, ms: number, observeDuration: boolean): void {
    stats.recordOk(ms);
    this.#metrics.countQuery(nodeId, role, 'ok', reason);
    if (observeDuration) this.#metrics.observeDuration(role, ms / 1000);
  }

  /**
   * `connection`: the node failed, not the statement. A statement's SQL error
   * counts as a success of the node; with `sqlErrorFails` (reads) it still
   * counts as a failed query.
   */
  #failed(stats: NodeStats, nodeId: string, role: ServingRole, reason: RouteReason, ms: number, connection: boolean, sqlErrorFails: boolean): void {
    stats.record(ms, !connection, Date.now());
    if (sqlErrorFails && !connection) stats.failed++;
    this.#metrics.countQuery(nodeId, role, connection ? 'connection-error' : 'sql-error', reason);
  }
}
