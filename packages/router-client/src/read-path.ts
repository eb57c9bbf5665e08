import { setTimeout as sleep } from 'node:timers/promises';
import type { NodeState } from '@pgreplica/protocol';
import type pg from 'pg';
import { FallbackBudgetExceededError, isConnectionError, RouterError, sqlState } from './errors.js';
import type { ReadOptions } from './router-types.js';
import type { RoutingParts } from './routing-parts.js';
import { type RankedReplica, ReplicaSelector, rankReplicas, type ReadConstraints, type RouteReason } from './selection.js';
import { type DecodedToken, isPrimaryOnlyToken } from './tokens.js';
import type { Statement } from './statement.js';
import type { WritePath } from './write-path.js';

/** A read's candidates, decided without running anything (no replay check). */
export interface ReadPlan {
  /** Replicas that qualify, best first. */
  replicas: readonly RankedReplica[];
  /** When none qualifies: why the read goes to the primary. */
  none: RouteReason | null;
  /** The token the read must honour, if any. */
  token: DecodedToken | null;
}

/** What a failed replica attempt means for the read. */
type AfterFailure = { next: 'replica'; reason: RouteReason } | { next: 'write' } | { next: 'throw' };

/**
 * Reads: picks a replica for the call's constraints, checks a token's replay
 * where the topology cannot prove it, tries the candidates in order (a
 * connection failure bans one and moves on), and falls back to the primary,
 * spending the fallback budget when the cause is availability. A statement a
 * replica refuses as a write (25006) runs through the write path.
 *
 * A read without a token takes the fast path: {@link ReplicaSelector} picks
 * in O(1) from a ranking made on topology and stats changes, and the read
 * runs with no further allocation of the router's own.
 */
export class ReadPath {
  readonly #parts: RoutingParts;
  readonly #writes: WritePath;
  readonly #selector: ReplicaSelector;

  constructor(parts: RoutingParts, writes: WritePath) {
    this.#parts = parts;
    this.#writes = writes;
    this.#selector = new ReplicaSelector((id) => parts.executor.statsOf(id), parts.maxLagMs);
  }

  /** The topology changed: re-rank before the next read. */
  topologyChanged(): void {
    this.#selector.invalidate();
  }

  /**
   * Why no replica may serve any read now (no topology, a stale bus with the
   * primary fallback — unless that primary is known to be down: then the
   * replicas as the router's own probes see them), else null.
   */
  #unavailable(): RouteReason | null {
    const parts = this.#parts;
    if (!parts.view.store.topology) return 'primary:no-replica';
    if (parts.view.fallback && (parts.options.fallback ?? 'primary') === 'primary' && !this.#primaryDown()) return 'primary:bus-stale';
    return null;
  }

  /**
   * Whether the primary is known to be down: the topology says it does not
   * answer (unreachable, timing out, fenced), or this router's own connection
   * failures banned it. A read never falls back to such a primary.
   */
  #primaryDown(): boolean {
    const primary = this.#parts.view.store.primary();
    if (!primary) return true;
    if (primary.status === 'unhealthy' && (primary.reason === 'unreachable' || primary.reason === 'timeout' || primary.reason === 'fenced')) return true;
    return this.#parts.executor.statsOf(primary.id).isBanned(Date.now());
  }

  /** Decides a read's candidates without running anything. @throws RouterError (`invalid-token`) for a bad `after`. */
  plan(options: ReadOptions): ReadPlan {
    const parts = this.#parts;
    const token = parts.token.forRead(options.after);
    const none = this.#unavailable();
    if (none) return { replicas: [], none, token };
    // A token whose position is unknown (see tokens.ts) only the primary satisfies.
    if (token && isPrimaryOnlyToken(token)) return { replicas: [], none: 'primary:token-not-replayed', token };
    const constraints: ReadConstraints = { maxLagMs: options.maxLagMs ?? parts.maxLagMs, minLsn: token?.lsn };
    const ranking = rankReplicas(parts.view.store.topology!.nodes, parts.executor.stats, constraints, Date.now());
    return { replicas: ranking.replicas, none: ranking.none, token };
  }

  /** Runs a read on the best qualifying replica (the primary when none qualifies). */
  read<R extends pg.QueryResultRow>(sql: Statement, params: unknown[] | undefined, options: ReadOptions): Promise<pg.QueryResult<R>> {
    const parts = this.#parts;
    let token: DecodedToken | null;
    try {
      parts.view.assertOpen('read()');
      token = parts.token.forRead(options.after);
    } catch (err) {
      return Promise.reject(err);
    }
    if (token === null && this.#unavailable() === null) {
      const node = this.#selector.pick(parts.view.store.topology!.nodes, options.maxLagMs ?? parts.maxLagMs, Date.now());
      if (node) {
        return parts.executor.read<R>(node, 'replica', 'replica:lag-ok', sql, params, (err) => {
          const after = this.#afterFailure(err);
          if (after.next === 'throw') return null;
          if (after.next === 'write') return this.#rerunAsWrite<R>(sql, params);
          return this.#read<R>(sql, params, options, after.reason);
        });
      }
    }
    return this.#read<R>(sql, params, options, null);
  }

  /** What a replica's error means: the node failed (try the next one), it refused a write (25006), or the caller's error. */
  #afterFailure(err: unknown): AfterFailure {
    if (isConnectionError(err)) {
      this.#selector.invalidate();
      return { next: 'replica', reason: 'primary:replica-failed' };
    }
    // The statement wrote after all (the classifier was fooled): refused, so it certainly did not run.
    if (sqlState(err) === '25006') return { next: 'write' };
    return { next: 'throw' };
  }

  /**
   * A statement a replica refused as a write: it runs as a write — fenced,
   * held through a switchover, its token recorded — and the classifier's
   * function catalog is re-read (a function it took for read-only wrote).
   */
  async #rerunAsWrite<R extends pg.QueryResultRow>(sql: Statement, params: unknown[] | undefined): Promise<pg.QueryResult<R>> {
    const parts = this.#parts;
    parts.metrics.countFallback('primary:read-only-refusal');
    parts.onReadOnlyRefusal?.();
    const { result, token } = await this.#writes.write<R>(sql, params, parts.token.enabled, 'primary:read-only-refusal');
    parts.token.note(token);
    return result;
  }

  /** The general path: a ranking per read (tokens, per-call lag bounds, after a failure). */
  async #read<R extends pg.QueryResultRow>(sql: Statement, params: unknown[] | undefined, options: ReadOptions, failed: RouteReason | null): Promise<pg.QueryResult<R>> {
    const { executor } = this.#parts;
    const plan = this.plan(options);
    let reason: RouteReason = failed ?? plan.none ?? 'primary:no-replica';
    for (const { node, lsn } of plan.replicas) {
      try {
        let why: RouteReason = plan.token ? 'replica:token-replayed' : 'replica:lag-ok';
        if (plan.token && lsn === 'check') {
          if (!(await this.hasReplayed(node, plan.token.lsn))) {
            reason = 'primary:token-not-replayed';
            continue;
          }
          why = 'replica:token-check';
        }
        return await executor.read<R>(node, 'replica', why, sql, params);
      } catch (err) {
        const after = this.#afterFailure(err);
        if (after.next === 'throw') throw err;
        if (after.next === 'write') return this.#rerunAsWrite<R>(sql, params);
        reason = after.reason;
      }
    }
    return this.#readOnPrimary<R>(sql, params, reason);
  }

  async #readOnPrimary<R extends pg.QueryResultRow>(sql: Statement, params: unknown[] | undefined, reason: RouteReason): Promise<pg.QueryResult<R>> {
    const { cluster, view, executor, fallbackBudget } = this.#parts;
    this.#parts.metrics.countFallback(reason);
    // Availability fallbacks are budgeted; correctness ones (tokens, refusals, a stale bus) are not.
    const budgeted = reason === 'primary:no-replica' || reason === 'primary:lag' || reason === 'primary:replica-failed';
    if (budgeted) {
      const waitMs = fallbackBudget.reserve(this.#parts.fallbackBudgetWaitMs);
      if (waitMs === undefined) {
        this.#parts.metrics.countFallback('primary:fallback-budget');
        throw new FallbackBudgetExceededError(`no replica qualifies (${reason}) and the primary's read fallback budget is spent; retry later`);
      }
      if (waitMs > 0) await sleep(waitMs);
    }
    const primary = view.store.primary();
    if (!primary) throw new RouterError('no-primary', `no primary known for cluster ${cluster} (epoch ${view.store.epoch})`);
    if (this.#primaryDown()) {
      this.#parts.metrics.countFallback('primary:down');
      throw new RouterError('primary-down', `no replica qualifies (${reason}) and the primary ${primary.id} is down: not sending the read there; retry, or relax maxLagMs`);
    }
    return executor.read<R>(primary, 'primary', reason, sql, params);
  }

  /** Whether `node` has replayed `lsn`, asking it (and waiting up to waitForLsnMs). */
  async hasReplayed(node: NodeState, lsn: string): Promise<boolean> {
    const { pools, executor, waitForLsnMs } = this.#parts;
    const deadline = Date.now() + waitForLsnMs;
    for (;;) {
      const { rows } = await pools
        .pool(node)
        .query<{ ok: boolean; lsn: string | null }>('SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false) AS ok, pg_last_wal_replay_lsn()::text AS lsn', [lsn]);
      const row = rows[0];
      if (row?.lsn) executor.statsOf(node.id).observedReplayLsn = row.lsn;
      if (row?.ok) return true;
      if (Date.now() >= deadline) return false;
      await sleep(Math.min(10, deadline - Date.now()));
    }
  }
}
