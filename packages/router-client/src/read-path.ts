import { setTimeout as sleep } from 'node:timers/promises';
import type { NodeState } from '@pgreplica/protocol';
import type pg from 'pg';
import { FallbackBudgetExceededError, isConnectionError, RouterError, sqlState } from './errors.js';
import type { ReadOptions } from './router-types.js';
import type { RoutingParts } from './routing-parts.js';
import { type RankedReplica, rankReplicas, type ReadConstraints, type RouteReason } from './selection.js';
import type { DecodedToken } from './tokens.js';

/** A read's candidates, decided without running anything (no replay check). */
export interface ReadPlan {
  /** Replicas that qualify, best first. */
  replicas: readonly RankedReplica[];
  /** When none qualifies: why the read goes to the primary. */
  none: RouteReason | null;
  /** The token the read must honour, if any. */
  token: DecodedToken | null;
}

/**
 * Reads: ranks the replicas for the call's constraints, checks a token's
 * replay where the topology cannot prove it, tries the candidates in order
 * (a connection failure bans one and moves on), and falls back to the
 * primary, spending the fallback budget when the cause is availability.
 */
export class ReadPath {
  readonly #parts: RoutingParts;

  constructor(parts: RoutingParts) {
    this.#parts = parts;
  }

  /** Decides a read's candidates without running anything. @throws RouterError (`invalid-token`) for a bad `after`. */
  plan(options: ReadOptions): ReadPlan {
    const parts = this.#parts;
    const token = parts.token.forRead(options.after);
    const topology = parts.view.store.topology;
    if (!topology) return { replicas: [], none: 'primary:no-replica', token };
    if (parts.view.fallback && (parts.options.fallback ?? 'primary') === 'primary') return { replicas: [], none: 'primary:bus-stale', token };
    const constraints: ReadConstraints = { maxLagMs: options.maxLagMs ?? parts.maxLagMs, minLsn: token?.lsn };
    const ranking = rankReplicas(topology.nodes, parts.executor.stats, constraints, Date.now());
    return {
      replicas: ranking.replicas,
      none: ranking.none,
      token,
    };
  }

  /** Runs a read on the best qualifying replica (the primary when none qualifies). */
  async read<R extends pg.QueryResultRow>(sql: string, params: unknown[] | undefined, options: ReadOptions): Promise<pg.QueryResult<R>> {
    const { view, executor } = this.#parts;
    view.assertOpen('read()');
    const plan = this.plan(options);
    let reason: RouteReason = plan.none ?? 'primary:no-replica';
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
        if (isConnectionError(err)) {
          reason = 'primary:replica-failed';
          continue;
        }
        if (sqlState(err) === '25006') {
          // The statement wrote after all (the classifier was fooled): refused, so it certainly did not run.
          reason = 'primary:read-only-refusal';
          break;
        }
        throw err;
      }
    }
    return this.#readOnPrimary<R>(sql, params, reason);
  }

  async #readOnPrimary<R extends pg.QueryResultRow>(sql: string, params: unknown[] | undefined, reason: RouteReason): Promise<pg.QueryResult<R>> {
    const { cluster, view, executor, metrics, fallbackBudget } = this.#parts;
    metrics.fallbacks.inc({ reason });
    // Availability fallbacks are budgeted; correctness ones (tokens, refusals, a stale bus) are not.
    const budgeted = reason === 'primary:no-replica' || reason === 'primary:lag' || reason === 'primary:replica-failed';
    if (budgeted && !fallbackBudget.tryTake()) {
      const waitMs = Math.min(this.#parts.fallbackBudgetWaitMs, fallbackBudget.msUntilNext());
      if (waitMs > 0) await sleep(waitMs);
      if (!fallbackBudget.tryTake()) {
        metrics.fallbacks.inc({ reason: 'primary:fallback-budget' });
        throw new FallbackBudgetExceededError(`no replica qualifies (${reason}) and the primary's read fallback budget is spent; retry later`);
      }
    }
    const primary = view.store.primary();
    if (!primary) throw new RouterError('no-primary', `no primary known for cluster ${cluster} (epoch ${view.store.epoch})`);
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
