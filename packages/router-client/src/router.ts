/**
 * The Router facade: the public API apps call (query, read, write,
 * transaction, session, explain, asPool, metrics) wired to the parts that do
 * the work — TopologyView (the bus), ReadPath, WritePath, Transactions and the
 * Executor. Past 300 lines because each public method carries its doc
 * comment here; the logic behind them lives in those files.
 */
import { EventEmitter } from 'node:events';
import type { NodeState, Topology } from '@pgreplica/protocol';
import type pg from 'pg';
import { type Classification, ClassifierCache } from './classifier.js';
import { isConnectionError, RouterError } from './errors.js';
import { Executor } from './executor.js';
import { FunctionCatalog } from './function-catalog.js';
import { RouterMetrics } from './metrics.js';
import { DEFAULT_ROUTER_OPTIONS, MIN_STALE_AFTER_MS, type RouterLogger, type RouterOptions } from './options.js';
import type { Binding, PoolHost } from './pool-host.js';
import { PoolSet } from './pool-set.js';
import { ProcessToken } from './process-token.js';
import { ReadPath } from './read-path.js';
import type { NodeMetrics, QueryOptions, ReadOptions, RouteDecision, RouterEventMap, SessionHost, TransactionClient, TransactionOptions, WriteResult } from './router-types.js';
import type { RoutingParts } from './routing-parts.js';
import type { RouteReason } from './selection.js';
import { RouterPool, type RouterPoolOptions } from './router-pool.js';
import { Session } from './session.js';
import { type Statement, statementText } from './statement.js';
import { TokenBucket } from './token-bucket.js';
import { type ConsistencyToken, decodeToken, encodeToken } from './tokens.js';
import { TopologyView } from './topology-view.js';
import { Transactions } from './transactions.js';
import { WritePath } from './write-path.js';

const NOOP_LOGGER: RouterLogger = { debug() {}, info() {}, warn() {}, error() {} };
/** The options of a call that passes none (shared: no allocation per call). */
const NO_OPTIONS: QueryOptions = Object.freeze({});

/**
 * Routes queries locally by the latest topology: reads to the best replica
 * that satisfies the call's constraints, writes to the primary of the
 * highest epoch. No Redis or monitor call on the query path.
 *
 * A facade that wires the parts: the topology and its freshness
 * (`TopologyView`), the bookkeeping of every call (`Executor`), and the
 * routes (`ReadPath`, `WritePath`, `Transactions`).
 */
export class Router extends EventEmitter<RouterEventMap> implements SessionHost {
  readonly cluster: string;
  readonly metrics: RouterMetrics;
  readonly #options: RouterOptions;
  readonly #classifier: ClassifierCache;
  readonly #pools: PoolSet;
  readonly #view: TopologyView;
  readonly #executor: Executor;
  readonly #token: ProcessToken;
  readonly #reads: ReadPath;
  readonly #writes: WritePath;
  readonly #transactions: Transactions;
  readonly #catalog: FunctionCatalog | null;
  #closing: Promise<void> | undefined;
  #poolHost: PoolHost | undefined;

  constructor(options: RouterOptions) {
    super();
    if (!options.cluster) throw new RouterError('invalid-option', 'cluster is required: the name the monitor publishes under');
    if (!options.redis && !options.nodes?.length) throw new RouterError('invalid-option', 'give redis (the bus) or nodes (static topology, probed by the router)');
    const staleAfterMs = options.staleAfterMs;
    if (staleAfterMs !== undefined && !(staleAfterMs >= MIN_STALE_AFTER_MS)) throw new RouterError('invalid-option', `staleAfterMs must be at least ${MIN_STALE_AFTER_MS}, got ${staleAfterMs}`);
    const skew = options.maxClockSkewMs;
    if (skew !== undefined && !(Number.isFinite(skew) && skew >= 0)) throw new RouterError('invalid-option', `maxClockSkewMs must be a number of milliseconds ≥ 0, got ${skew}`);
    const maxLagMs = options.defaults?.maxLagMs ?? DEFAULT_ROUTER_OPTIONS.defaults.maxLagMs;
    const maxWritePauseMs = options.maxWritePauseMs ?? DEFAULT_ROUTER_OPTIONS.maxWritePauseMs;
    const waitForLsnMs = options.waitForLsnMs ?? DEFAULT_ROUTER_OPTIONS.waitForLsnMs;
    const budget = { ...DEFAULT_ROUTER_OPTIONS.fallbackBudget, ...options.fallbackBudget };
    const ban = { ...DEFAULT_ROUTER_OPTIONS.ban, ...options.ban };
    for (const [name, value] of Object.entries({ maxLagMs, maxWritePauseMs, waitForLsnMs })) {
      if (!(value >= 0)) throw new RouterError('invalid-option', `${name} must be a number of milliseconds >= 0, got ${value}`);
    }
    this.#options = options;
    this.cluster = options.cluster;
    const log = options.logger ?? NOOP_LOGGER;
    const primaryFunctions = options.primaryFunctions ?? [];
    this.#classifier = new ClassifierCache(undefined, { primaryFunctions: new Set(primaryFunctions) });
    const fallbackBudget = new TokenBucket(budget.ratePerSec, budget.burst);
    // The gauges may be collected before the view exists, or after seeding it
    // threw (the registry may be the app's): then there is no topology.
    let view: TopologyView | undefined;
    this.metrics = new RouterMetrics(
      options.registry,
      () => (view ? view.ageMs() : Number.POSITIVE_INFINITY) / 1000,
      () => view?.fallback ?? false,
    );
    this.#pools = new PoolSet(
      options.connection,
      { ...DEFAULT_ROUTER_OPTIONS.pool, ...options.pool },
      (err, nodeId) => {
        log.warn({ err, nodeId }, 'idle pooled connection failed');
        if (this.listenerCount('error') > 0) this.emit('error', err);
      },
      (nodeId, epoch) => view?.noteNewerEpoch(nodeId, epoch),
    );
    view = new TopologyView(options, staleAfterMs, log, this.metrics, {
      onTopology: (topology) => {
        this.#reads?.topologyChanged();
        this.#pools.retain(new Set(topology.nodes.map((n) => n.id)));
        this.emit('topology', topology);
      },
      onFallback: (state) => this.emit('fallback', state),
      onError: (err) => {
        if (this.listenerCount('error') > 0) this.emit('error', err);
      },
      onEpoch: (epoch) => {
        const cut = this.#pools.abandonWritesBefore(epoch);
        if (cut > 0) log.warn({ epoch, cut }, 'new primary: cut the writes still waiting on the old one (unacknowledged, not retried)');
      },
    });
    this.#view = view;
    this.#executor = new Executor(this.#pools, this.metrics, log, ban);
    this.#token = new ProcessToken(options);
    const parts: RoutingParts = {
      cluster: this.cluster,
      options,
      view: this.#view,
      pools: this.#pools,
      executor: this.#executor,
      metrics: this.metrics,
      token: this.#token,
      maxLagMs,
      waitForLsnMs,
      maxWritePauseMs,
      fallbackBudget,
      fallbackBudgetWaitMs: budget.waitMs,
      onReadOnlyRefusal: () => this.#catalog?.refreshSoon(),
    };
    const classifying = (options.routing ?? DEFAULT_ROUTER_OPTIONS.routing) === 'classify';
    this.#catalog =
      classifying && (options.functionCatalog ?? DEFAULT_ROUTER_OPTIONS.functionCatalog)
        ? new FunctionCatalog({ primary: () => this.#view.store.primary(), pool: (node) => this.#pools.pool(node) }, log, (names) =>
            this.#classifier.setOptions({ primaryFunctions: new Set([...primaryFunctions, ...names]) }),
          )
        : null;
    this.#writes = new WritePath(parts);
    this.#reads = new ReadPath(parts, this.#writes);
    this.#transactions = new Transactions(parts, this.#reads, this.#writes);
  }

  /**
   * Resolves once a topology is known (from the bus, the seed nodes' probes,
   * or a reload). After `readyTimeoutMs` it resolves if there is a topology
   * at all (unprobed seed nodes count), else rejects.
   */
  async ready(): Promise<void> {
    await this.#view.ready();
    // The classifier's catalog of user functions that may write: one attempt, retried in the background.
    await this.#catalog?.load();
  }

  #target(node: Pick<NodeState, 'host' | 'port'>): string {
    const c = this.#options.connection;
    return `postgres://${encodeURIComponent(c.user ?? '')}@${node.host}:${node.port}/${encodeURIComponent(c.database ?? '')}`;
  }

  /**
   * Runs a statement, routed by the classifier (`routing: 'classify'`):
   * reads to a replica, everything else — and anything unsure — to the
   * primary. With `routing: 'explicit'` it uses the primary unless the call
   * passes `target`.
   */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: Statement, params?: unknown[], options: QueryOptions = NO_OPTIONS): Promise<pg.QueryResult<R>> {
    try {
      this.#view.assertOpen('query()');
      // The per-read path: no decision object, just the target.
      const target = options.target ?? ((this.#options.routing ?? 'classify') === 'explicit' ? 'primary' : this.#classifier.classify(statementText(sql)).target);
      if (target === 'replica') return this.#reads.read<R>(sql, params, options);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#queryOnPrimary<R>(sql, params, options.target === 'primary' || (this.#options.routing ?? 'classify') === 'explicit' ? 'primary:explicit' : 'primary:classified-write');
  }

  async #queryOnPrimary<R extends pg.QueryResultRow>(sql: Statement, params: unknown[] | undefined, reason: RouteReason): Promise<pg.QueryResult<R>> {
    const { result, token } = await this.#writes.write<R>(sql, params, this.#token.enabled, reason);
    this.#token.note(token);
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
  read<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: Statement, params?: unknown[], options: ReadOptions = NO_OPTIONS): Promise<pg.QueryResult<R>> {
    return this.#reads.read<R>(sql, params, options);
  }

  /** Runs a statement on the primary and returns its read-your-writes token. */
  async write<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: Statement, params?: unknown[]): Promise<WriteResult<R>> {
    const { result, token } = await this.#writes.write<R>(sql, params, true, 'primary:write');
    this.#token.note(token);
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
  transactionWithToken<T>(fn: (tx: TransactionClient) => Promise<T>, options: TransactionOptions = {}): Promise<{ value: T; token: ConsistencyToken | null }> {
    return this.#transactions.run(fn, options);
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
    const plan = this.#reads.plan(options);
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
    return this.#reads.plan(options).replicas[0]?.node ?? null;
  }

  /** The primary writes go to now. */
  getWriteTarget(): RouteDecision {
    const primary = this.#view.store.primary();
    return { nodeId: primary?.id ?? null, role: primary ? 'primary' : null, reason: 'primary:write', target: primary ? this.#target(primary) : null };
  }

  /** The topology the router routes by, and its age. */
  getTopology(): { topology: Topology | null; ageMs: number; fallback: boolean; epoch: number } {
    const { store } = this.#view;
    return { topology: store.topology, ageMs: this.#view.ageMs(), fallback: this.#view.fallback, epoch: store.epoch };
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
   * A `pg.Pool`-compatible face of this router, for drivers and ORMs that
   * take a pool (Drizzle, Kysely, Prisma's `@prisma/adapter-pg`, Knex's
   * `connectionPool`). Its `query()` is routed like `router.query()` — in
   * the session of `runWithSession()`, when there is one; its `connect()`
   * gives a client pinned to one node (see {@link RouterPoolOptions}).
   * Each call makes a new face; they share the router's connections.
   */
  asPool(options: RouterPoolOptions = {}): RouterPool {
    this.#view.assertOpen('asPool()');
    this.#poolHost ??= this.#makePoolHost();
    return new RouterPool(this, this.#poolHost, options);
  }

  #makePoolHost(): PoolHost {
    const view = this.#view;
    const pools = this.#pools;
    const metrics = this.metrics;
    const processToken = this.#token;
    const maxWritePauseMs = this.#options.maxWritePauseMs ?? DEFAULT_ROUTER_OPTIONS.maxWritePauseMs;
    const explicit = (this.#options.routing ?? DEFAULT_ROUTER_OPTIONS.routing) === 'explicit';
    return {
      isRead: (sql) => this.#classifier.classify(sql).target === 'replica',
      explicit,
      bindPrimary: async (): Promise<Binding> => {
        view.assertOpen('query()');
        const store = view.store;
        const deadline = Date.now() + maxWritePauseMs;
        for (;;) {
          const node = await this.#writes.waitWritable(deadline);
          const epoch = store.epoch;
          try {
            return { node, client: await pools.writeClient(node, epoch, store.topology?.systemIdentifier ?? null), role: 'primary', epoch };
          } catch (err) {
            if (!isConnectionError(err) || Date.now() >= deadline) throw err;
            metrics.writeRetries.inc({ cause: (err as RouterError).code === 'fenced' ? 'fenced' : 'connect' });
            await view.refresh();
          }
        }
      },
      bindReadOnly: async (after): Promise<Binding> => {
        view.assertOpen('query()');
        const plan = this.#reads.plan({ after });
        for (const { node, lsn } of plan.replicas) {
          if (plan.token && lsn === 'check' && !(await this.#reads.hasReplayed(node, plan.token.lsn).catch(() => false))) continue;
          try {
            return { node, client: await pools.pool(node).connect(), role: 'replica', epoch: view.store.epoch };
          } catch (err) {
            if (!isConnectionError(err)) throw err;
            this.#executor.ban(node, err);
          }
        }
        const primary = view.store.primary();
        if (!primary) throw new RouterError('no-primary', `no primary known for cluster ${this.cluster}`);
        metrics.countFallback(plan.none ?? 'primary:transaction');
        return { node: primary, client: await pools.pool(primary).connect(), role: 'primary', epoch: view.store.epoch };
      },
      tokenAfterCommit: async (binding, lsn) => (lsn ? { epoch: binding.epoch, lsn } : this.#writes.tokenAfterCommit(binding.node, binding.epoch)),
      noteToken: (token) => this.#token.note(token),
      get processWideToken() {
        return processToken.enabled;
      },
      refresh: () => view.refresh(),
      watchPools: (fn) => pools.watch(fn),
      counts: () => pools.counts(),
      poolOptions: { ...DEFAULT_ROUTER_OPTIONS.pool, ...this.#options.pool },
      close: () => this.close(),
    };
  }

  /**
   * Stops intake, then closes the bus, the probes and the pools. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#catalog?.close();
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
