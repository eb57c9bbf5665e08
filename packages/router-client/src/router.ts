import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NodeState, Topology } from '@pgreplica/protocol';
import type pg from 'pg';
import { type Classification, ClassifierCache } from './classifier.js';
import { FallbackBudgetExceededError, isConnectionError, RouterError, sqlState } from './errors.js';
import { CURRENT_WAL_LSN_SQL, Executor } from './executor.js';
import { RouterMetrics } from './metrics.js';
import { DEFAULT_ROUTER_OPTIONS, MIN_STALE_AFTER_MS, type RouterLogger, type RouterOptions } from './options.js';
import { PoolSet } from './pool-set.js';
import type { NodeMetrics, QueryOptions, ReadOptions, RouteDecision, RouterEventMap, SessionHost, TransactionClient, TransactionOptions, WriteResult } from './router-types.js';
import { type RankedReplica, rankReplicas, type ReadConstraints, type RouteReason } from './selection.js';
import { Session } from './session.js';
import { TokenBucket } from './token-bucket.js';
import { type ConsistencyToken, decodeToken, type DecodedToken, encodeToken, laterToken } from './tokens.js';
import { TopologyView } from './topology-view.js';

const NOOP_LOGGER: RouterLogger = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * Routes queries locally by the latest topology: reads to the best replica
 * that satisfies the call's constraints, writes to the primary of the
 * highest epoch. No Redis or monitor call on the query path.
 */
export class Router extends EventEmitter<RouterEventMap> implements SessionHost {
  readonly cluster: string;
  readonly metrics: RouterMetrics;
  readonly #options: RouterOptions;
  readonly #pools: PoolSet;
  readonly #classifier: ClassifierCache;
  readonly #budget: TokenBucket;
  readonly #view: TopologyView;
  readonly #executor: Executor;
  #closing: Promise<void> | undefined;
  #token: DecodedToken | null = null;
  readonly #maxLagMs: number;
  readonly #maxWritePauseMs: number;
  readonly #waitForLsnMs: number;
  readonly #budgetWaitMs: number;

  constructor(options: RouterOptions) {
    super();
    if (!options.cluster) throw new RouterError('invalid-option', 'cluster is required: the name the monitor publishes under');
    if (!options.redis && !options.nodes?.length) throw new RouterError('invalid-option', 'give redis (the bus) or nodes (static topology, probed by the router)');
    const staleAfterMs = options.staleAfterMs ?? DEFAULT_ROUTER_OPTIONS.staleAfterMs;
    if (staleAfterMs < MIN_STALE_AFTER_MS) throw new RouterError('invalid-option', `staleAfterMs must be at least ${MIN_STALE_AFTER_MS}, got ${staleAfterMs}`);
    this.#maxLagMs = options.defaults?.maxLagMs ?? DEFAULT_ROUTER_OPTIONS.defaults.maxLagMs;
    this.#maxWritePauseMs = options.maxWritePauseMs ?? DEFAULT_ROUTER_OPTIONS.maxWritePauseMs;
    this.#waitForLsnMs = options.waitForLsnMs ?? DEFAULT_ROUTER_OPTIONS.waitForLsnMs;
    const budget = { ...DEFAULT_ROUTER_OPTIONS.fallbackBudget, ...options.fallbackBudget };
    this.#budgetWaitMs = budget.waitMs;
    const ban = { ...DEFAULT_ROUTER_OPTIONS.ban, ...options.ban };
    for (const [name, value] of Object.entries({ maxLagMs: this.#maxLagMs, maxWritePauseMs: this.#maxWritePauseMs, waitForLsnMs: this.#waitForLsnMs })) {
      if (!(value >= 0)) throw new RouterError('invalid-option', `${name} must be a number of milliseconds >= 0, got ${value}`);
    }
    this.#options = options;
    this.cluster = options.cluster;
    const log = options.logger ?? NOOP_LOGGER;
    this.#classifier = new ClassifierCache(undefined, { primaryFunctions: new Set(options.primaryFunctions ?? []) });
    this.#budget = new TokenBucket(budget.ratePerSec, budget.burst);
    // The gauges may be collected before the view exists, or after seeding it
    // threw (the registry may be the app's): then there is no topology.
    let view: TopologyView | undefined;
    this.metrics = new RouterMetrics(
      options.registry,
      () => (view ? view.ageMs() : Number.POSITIVE_INFINITY) / 1000,
      () => view?.fallback ?? false,
    );
    this.#pools = new PoolSet(options.connection, { ...DEFAULT_ROUTER_OPTIONS.pool, ...options.pool }, (err, nodeId) => {
      log.warn({ err, nodeId }, 'idle pooled connection failed');
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });
    view = new TopologyView(options, staleAfterMs, log, this.metrics, {
      onTopology: (topology) => {
        this.#pools.retain(new Set(topology.nodes.map((n) => n.id)));
        this.emit('topology', topology);
      },
      onFallback: (state) => this.emit('fallback', state),
    });
    this.#view = view;
    this.#executor = new Executor(this.#pools, this.metrics, log, ban);
  }

  /**
   * Resolves once a topology is known (from the bus, the seed nodes' probes,
   * or a reload). Rejects after `readyTimeoutMs`.
   */
  ready(): Promise<void> {
    return this.#view.ready();
  }

  // --- helpers ----------------------------------------------------------------------

  #target(node: Pick<NodeState, 'host' | 'port'>): string {
    const c = this.#options.connection;
    return `postgres://${encodeURIComponent(c.user ?? '')}@${node.host}:${node.port}/${encodeURIComponent(c.database ?? '')}`;
  }

  #effectiveToken(after: ConsistencyToken | null | undefined): DecodedToken | null {
    const explicit = after ? decodeToken(after) : null;
    const processWide = (this.#options.defaults?.consistency ?? 'eventual') === 'read-your-writes' ? this.#token : null;
    return laterToken(explicit, processWide);
  }

  /** Whether `node` has replayed `lsn`, asking it (and waiting up to waitForLsnMs). */
  async #hasReplayed(node: NodeState, lsn: string): Promise<boolean> {
    const deadline = Date.now() + this.#waitForLsnMs;
    for (;;) {
      const { rows } = await this.#pools
        .pool(node)
        .query<{ ok: boolean; lsn: string | null }>('SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false) AS ok, pg_last_wal_replay_lsn()::text AS lsn', [lsn]);
      const row = rows[0];
      if (row?.lsn) this.#executor.statsOf(node.id).observedReplayLsn = row.lsn;
      if (row?.ok) return true;
      if (Date.now() >= deadline) return false;
      await sleep(Math.min(10, deadline - Date.now()));
    }
  }

  // --- reads ------------------------------------------------------------------------

  /** Decides a read's target without running anything (no replay check). */
  #planRead(options: ReadOptions): { replicas: readonly RankedReplica[]; none: RouteReason | null; token: DecodedToken | null } {
    const token = this.#effectiveToken(options.after);
    const topology = this.#view.store.topology;
    if (!topology) return { replicas: [], none: 'primary:no-replica', token };
    if (this.#view.fallback && (this.#options.fallback ?? 'primary') === 'primary') return { replicas: [], none: 'primary:bus-stale', token };
    const constraints: ReadConstraints = { maxLagMs: options.maxLagMs ?? this.#maxLagMs, minLsn: token?.lsn };
    const ranking = rankReplicas(topology.nodes, this.#executor.stats, constraints, Date.now());
    return {
      replicas: ranking.replicas,
      none: ranking.none,
      token,
    };
  }

  async #read<R extends pg.QueryResultRow>(sql: string, params: unknown[] | undefined, options: ReadOptions): Promise<pg.QueryResult<R>> {
    this.#view.assertOpen('read()');
    const plan = this.#planRead(options);
    let reason: RouteReason = plan.none ?? 'primary:no-replica';
    for (const { node, lsn } of plan.replicas) {
      try {
        let why: RouteReason = plan.token ? 'replica:token-replayed' : 'replica:lag-ok';
        if (plan.token && lsn === 'check') {
          if (!(await this.#hasReplayed(node, plan.token.lsn))) {
            reason = 'primary:token-not-replayed';
            continue;
          }
          why = 'replica:token-check';
        }
        return await this.#executor.read<R>(node, 'replica', why, sql, params);
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
    this.metrics.fallbacks.inc({ reason });
    // Availability fallbacks are budgeted; correctness ones (tokens, refusals, a stale bus) are not.
    const budgeted = reason === 'primary:no-replica' || reason === 'primary:lag' || reason === 'primary:replica-failed';
    if (budgeted && !this.#budget.tryTake()) {
      const waitMs = Math.min(this.#budgetWaitMs, this.#budget.msUntilNext());
      if (waitMs > 0) await sleep(waitMs);
      if (!this.#budget.tryTake()) {
        this.metrics.fallbacks.inc({ reason: 'primary:fallback-budget' });
        throw new FallbackBudgetExceededError(`no replica qualifies (${reason}) and the primary's read fallback budget is spent; retry later`);
      }
    }
    const primary = this.#view.store.primary();
    if (!primary) throw new RouterError('no-primary', `no primary known for cluster ${this.cluster} (epoch ${this.#view.store.epoch})`);
    return this.#executor.read<R>(primary, 'primary', reason, sql, params);
  }

  // --- writes -----------------------------------------------------------------------

  async #waitWritable(deadline: number): Promise<NodeState> {
    for (;;) {
      const sw = this.#view.store.switchover;
      const held = sw !== null && Date.now() - sw.startedAt < this.#maxWritePauseMs;
      const primary = held ? null : this.#view.store.primary();
      if (primary) return primary;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new RouterError(
          held ? 'write-pause-timeout' : 'no-primary',
          held ? `writes held by a switchover for more than ${this.#maxWritePauseMs} ms` : `no primary known for cluster ${this.cluster}`,
        );
      }
      await this.#view.nextChange(Math.min(left, 100));
    }
  }

  async #write<R extends pg.QueryResultRow>(sql: string, params: unknown[] | undefined, wantToken: boolean, reason: RouteReason): Promise<{ result: pg.QueryResult<R>; token: DecodedToken | null }> {
    this.#view.assertOpen('write()');
    const deadline = Date.now() + this.#maxWritePauseMs;
    let lastError: unknown;
    for (;;) {
      let primary: NodeState;
      try {
        primary = await this.#waitWritable(deadline);
      } catch (err) {
        throw lastError && (err as RouterError).code === 'no-primary' ? lastError : err;
      }
      const epoch = this.#view.store.epoch;
      const started = performance.now();
      let client: pg.PoolClient;
      try {
        client = await this.#pools.writeClient(primary, epoch, this.#view.store.topology?.systemIdentifier ?? null);
      } catch (err) {
        if (!isConnectionError(err) || Date.now() >= deadline) throw err;
        // It certainly did not run: find the (new) primary and try again.
        lastError = err;
        this.#executor.statsOf(primary.id).addError(Date.now());
        this.metrics.writeRetries.inc({ cause: (err as RouterError).code === 'fenced' ? 'fenced' : 'connect' });
        await this.#view.refresh();
        continue;
      }
      try {
        return await this.#executor.write<R>(primary, client, epoch, started, reason, sql, params, wantToken);
      } catch (err) {
        if (sqlState(err) === '25006' && Date.now() < deadline) {
          // Refused by a read-only server (demoted): it did not run. Retry on the new primary.
          lastError = err;
          this.metrics.writeRetries.inc({ cause: 'read-only' });
          await this.#view.refresh();
          continue;
        }
        // A connection lost mid-statement may or may not have run it: never retried.
        throw err;
      }
    }
  }

  #noteToken(token: DecodedToken | null): void {
    if (token && (this.#options.defaults?.consistency ?? 'eventual') === 'read-your-writes') this.#token = laterToken(this.#token, token);
  }

  // --- public API ----------------------------------------------------------------------

  /**
   * Runs a statement, routed by the classifier (`routing: 'classify'`):
   * reads to a replica, everything else — and anything unsure — to the
   * primary. With `routing: 'explicit'` it always uses the primary.
   */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[], options: QueryOptions = {}): Promise<pg.QueryResult<R>> {
    this.#view.assertOpen('query()');
    const decision = this.#classifyTarget(sql, options);
    if (decision.target === 'replica') return this.#read<R>(sql, params, options);
    const rw = (this.#options.defaults?.consistency ?? 'eventual') === 'read-your-writes';
    const { result, token } = await this.#write<R>(sql, params, rw, decision.reason);
    this.#noteToken(token);
    return result;
  }

  #classifyTarget(sql: string, options: QueryOptions): { target: 'primary' | 'replica'; reason: RouteReason; classification?: Classification } {
    if (options.target) return { target: options.target, reason: options.target === 'primary' ? 'primary:explicit' : 'replica:lag-ok' };
    if ((this.#options.routing ?? 'classify') === 'explicit') return { target: 'primary', reason: 'primary:explicit' };
    const classification = this.#classifier.classify(sql);
    return { target: classification.target, reason: classification.target === 'primary' ? 'primary:classified-write' : 'replica:lag-ok', classification };
  }

  /** Where `query()` would send `sql`: `replica` (a read) or `primary`. */
  routeKind(sql: string): 'primary' | 'replica' {
    return this.#classifyTarget(sql, {}).target;
  }

  /** Runs a read on the best qualifying replica (the primary when none qualifies). */
  read<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[], options: ReadOptions = {}): Promise<pg.QueryResult<R>> {
    return this.#read<R>(sql, params, options);
  }

  /** Runs a statement on the primary and returns its read-your-writes token. */
  async write<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<WriteResult<R>> {
    const { result, token } = await this.#write<R>(sql, params, true, 'primary:write');
    this.#noteToken(token);
    return Object.assign(result, { token: encodeToken(token!) });
  }

  /**
   * Runs `fn` in a transaction: on the primary, or — with `readOnly` — on a
   * replica (`BEGIN READ ONLY`). Rolls back when `fn` throws.
   */
  async transaction<T>(fn: (tx: TransactionClient) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    return (await this.transactionWithToken(fn, options)).value;
  }

  /** `transaction()` that also returns the commit's token (null for read-only ones). */
  async transactionWithToken<T>(fn: (tx: TransactionClient) => Promise<T>, options: TransactionOptions = {}): Promise<{ value: T; token: ConsistencyToken | null }> {
    this.#view.assertOpen('transaction()');
    if (options.readOnly) {
      const plan = this.#planRead(options);
      for (const { node, lsn } of plan.replicas) {
        if (plan.token && lsn === 'check' && !(await this.#hasReplayed(node, plan.token.lsn).catch(() => false))) continue;
        let client: pg.PoolClient;
        try {
          client = await this.#pools.pool(node).connect();
        } catch (err) {
          if (!isConnectionError(err)) throw err;
          this.#executor.ban(node, err);
          continue;
        }
        return { value: await this.#executor.transaction(node, 'replica', client, 'BEGIN READ ONLY', fn), token: null };
      }
      const primary = this.#view.store.primary();
      if (!primary) throw new RouterError('no-primary', `no primary known for cluster ${this.cluster}`);
      this.metrics.fallbacks.inc({ reason: plan.none ?? 'primary:transaction' });
      return { value: await this.#executor.transaction(primary, 'primary', await this.#pools.pool(primary).connect(), 'BEGIN READ ONLY', fn), token: null };
    }
    const deadline = Date.now() + this.#maxWritePauseMs;
    for (;;) {
      const primary = await this.#waitWritable(deadline);
      let client: pg.PoolClient;
      try {
        client = await this.#pools.writeClient(primary, this.#view.store.epoch, this.#view.store.topology?.systemIdentifier ?? null);
      } catch (err) {
        if (!isConnectionError(err) || Date.now() >= deadline) throw err;
        this.metrics.writeRetries.inc({ cause: 'connect' });
        await this.#view.refresh();
        continue;
      }
      const epoch = this.#view.store.epoch;
      let lsn: string | undefined;
      const value = await this.#executor.transaction(primary, 'primary', client, 'BEGIN', fn, async () => {
        lsn = (await client.query<{ lsn: string }>(CURRENT_WAL_LSN_SQL)).rows[0]?.lsn;
      });
      const token = lsn ? { epoch, lsn } : null;
      this.#noteToken(token);
      return { value, token: token ? encodeToken(token) : null };
    }
  }

  /** A session: reads see this session's writes (and those of `token`, e.g. from another service). */
  session(token?: ConsistencyToken | null): Session {
    if (token) decodeToken(token);
    return new Session(this, token ?? null);
  }

  /** Where `sql` would go now and why, without running it. */
  explain(sql: string, options: QueryOptions = {}): RouteDecision {
    const decision = this.#classifyTarget(sql, options);
    if (decision.target === 'primary') return { ...this.getWriteTarget(), reason: decision.reason, classification: decision.classification };
    return { ...this.getReadTarget(options), ...(decision.classification ? { classification: decision.classification } : {}) };
  }

  /** Where a read with these options would go now. */
  getReadTarget(options: ReadOptions = {}): RouteDecision {
    const plan = this.#planRead(options);
    const first = plan.replicas[0];
    if (first) {
      const { node } = first;
      const check = plan.token !== null && first.lsn === 'check';
      return { nodeId: node.id, role: 'replica', reason: plan.token ? (check ? 'replica:token-check' : 'replica:token-replayed') : 'replica:lag-ok', target: this.#target(node) };
    }
    const primary = this.#view.store.primary();
    return { nodeId: primary?.id ?? null, role: primary ? 'primary' : null, reason: plan.none ?? 'primary:no-replica', target: primary ? this.#target(primary) : null };
  }

  /** The replica a plain read would use now, or null. */
  getBestReplica(options: ReadOptions = {}): NodeState | null {
    return this.#planRead(options).replicas[0]?.node ?? null;
  }

  /** The primary writes go to now. */
  getWriteTarget(): RouteDecision {
    const primary = this.#view.store.primary();
    return { nodeId: primary?.id ?? null, role: primary ? 'primary' : null, reason: 'primary:write', target: primary ? this.#target(primary) : null };
  }

  /** The topology the router routes by, and its age. */
  getTopology(): { topology: Topology | null; ageMs: number; fallback: boolean; epoch: number } {
    return { topology: this.#view.store.topology, ageMs: this.#view.ageMs(), fallback: this.#view.fallback, epoch: this.#view.store.epoch };
  }

  /** Per-node figures: status, role, lag, health check, failures, queries, success rate. Passwords never appear. */
  getMetrics(): NodeMetrics[] {
    const now = Date.now();
    return (this.#view.store.topology?.nodes ?? []).map((n) => {
      const s = this.#executor.stats.get(n.id);
      return {
        id: n.id,
        target: this.#target(n),
        role: n.role,
        status: n.status,
        reason: n.reason,
        lagMs: n.lagMs,
        lagBytes: n.lagBytes,
        lastHealthCheckAt: n.lastCheckAt,
        consecutiveFailures: n.consecutiveFailures,
        totalQueries: s?.total ?? 0,
        failedQueries: s?.failed ?? 0,
        successRate: s?.successRate ?? 1,
        inFlight: s?.inFlight ?? 0,
        latencyEwmaMs: s?.latencyEwmaMs ?? null,
        bannedForMs: Math.max(0, (s?.bannedUntil ?? 0) - now),
        lastError: s?.lastError ?? null,
      };
    });
  }

  /**
   * Stops intake, then closes the bus, the probes and the pools. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#view.close();
      await this.#pools.close();
    })();
    return this.#closing;
  }
}

/** Creates a router. Call `await router.ready()` before the first query. */
export function createRouter(options: RouterOptions): Router {
  return new Router(options);
}
