import type { NodeState } from '@pgreplica/protocol';
import type pg from 'pg';
import { isConnectionError } from './errors.js';
import type { RouterMetrics } from './metrics.js';
import { NodeStats } from './node-stats.js';
import type { RouterLogger } from './options.js';
import type { PoolSet } from './pool-set.js';
import type { TransactionClient } from './router-types.js';
import type { RouteReason } from './selection.js';
import type { DecodedToken } from './tokens.js';

/** The role a node served a call in (a metric label). */
export type ServingRole = 'primary' | 'replica';

/** The primary's WAL position after a commit: the read-your-writes token's LSN. */
export const CURRENT_WAL_LSN_SQL = 'SELECT pg_current_wal_lsn()::text AS lsn';

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
   * statement's; a connection failure bans the node. Errors are rethrown as they are.
   */
  async read<R extends pg.QueryResultRow>(node: NodeState, role: ServingRole, reason: RouteReason, sql: string, params?: unknown[]): Promise<pg.QueryResult<R>> {
    const stats = this.statsOf(node.id);
    let started = performance.now();
    stats.inFlight++;
    let client: pg.PoolClient | undefined;
    try {
      client = await this.#pools.pool(node).connect();
      // Latency is the statement's: opening a connection is not the node being slow.
      started = performance.now();
      const result = await client.query<R>(sql, params);
      client.release();
      client = undefined;
      this.#succeeded(stats, node.id, role, reason, performance.now() - started, true);
      return result;
    } catch (err) {
      const connection = isConnectionError(err);
      client?.release(connection ? (err as Error) : undefined);
      this.#failed(stats, node.id, role, reason, performance.now() - started, connection, true);
      if (connection) this.ban(node, err);
      throw err;
    } finally {
      stats.inFlight--;
    }
  }

  /**
   * A write: one statement on `client`, a connection to the primary fenced for
   * `epoch`; with `wantToken`, then the commit's position as a token of
   * `epoch`. The latency runs from `startedMs` (before the connection was
   * taken and fenced). Releases the client; errors are rethrown as they are.
   */
  async write<R extends pg.QueryResultRow>(
    primary: NodeState,
    client: pg.PoolClient,
    epoch: number,
    startedMs: number,
    reason: RouteReason,
    sql: string,
    params: unknown[] | undefined,
    wantToken: boolean,
  ): Promise<{ result: pg.QueryResult<R>; token: DecodedToken | null }> {
    const stats = this.statsOf(primary.id);
    stats.inFlight++;
    try {
      const result = await client.query<R>(sql, params);
      let token: DecodedToken | null = null;
      if (wantToken) {
        const { rows } = await client.query<{ lsn: string }>(CURRENT_WAL_LSN_SQL);
        token = { epoch, lsn: rows[0]!.lsn };
      }
      client.release();
      this.#succeeded(stats, primary.id, 'primary', reason, performance.now() - startedMs, true);
      return { result, token };
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
   * A transaction on `client`: `begin`, `fn`, `COMMIT`, then `afterCommit`;
   * rolls back when `fn` throws. Releases the client (destroyed when its
   * connection broke or the rollback failed); errors are rethrown as they are.
   */
  async transaction<T>(node: NodeState, role: ServingRole, client: pg.PoolClient, begin: string, fn: (tx: TransactionClient) => Promise<T>, afterCommit?: () => Promise<void>): Promise<T> {
    const stats = this.statsOf(node.id);
    stats.inFlight++;
    const started = performance.now();
    let broken: Error | undefined;
    try {
      await client.query(begin);
      const value = await fn({ query: (sql, params) => client.query(sql, params) });
      await client.query('COMMIT');
      await afterCommit?.();
      this.#succeeded(stats, node.id, role, 'primary:transaction', performance.now() - started, false);
      return value;
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
    stats.record(ms, true, Date.now());
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
