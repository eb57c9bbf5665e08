import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NodeSpec } from '@pgreplica/probe';
import type { BusEvent, NodeState, Topology } from '@pgreplica/protocol';
import type pg from 'pg';
import { BusClient } from './bus-client.js';
import { type Classification, ClassifierCache } from './classifier.js';
import { FallbackBudgetExceededError, isConnectionError, RouterError, sqlState } from './errors.js';
import { RouterMetrics } from './metrics.js';
import { NodeStats } from './node-stats.js';
import { DEFAULT_ROUTER_OPTIONS, MIN_STALE_AFTER_MS, type RouterLogger, type RouterOptions, type StaticNode } from './options.js';
import { PoolSet } from './pool-set.js';
import type { NodeMetrics, QueryOptions, ReadOptions, RouteDecision, RouterEventMap, SessionHost, TransactionClient, TransactionOptions, WriteResult } from './router-types.js';
import { ProbeSource } from './probe-source.js';
import { type RankedReplica, rankReplicas, type ReadConstraints, type RouteReason } from './selection.js';
import { Session } from './session.js';
import { TokenBucket } from './token-bucket.js';
import { type ConsistencyToken, decodeToken, type DecodedToken, encodeToken, laterToken } from './tokens.js';
import { TopologyStore } from './topology-store.js';

const NOOP_LOGGER: RouterLogger = { debug() {}, info() {}, warn() {}, error() {} };

function nodeFromStatic(n: StaticNode): NodeState {
  let host = n.host;
  let port = n.port;
  if (n.url) {
    const u = new URL(n.url);
    host = u.hostname;
    port = Number(u.port || 5432);
  }
  if (!host || !port) throw new RouterError('invalid-option', `nodes[${n.id}]: give url or host and port`);
  return {
    id: n.id,
    host,
    port,
    role: n.role ?? 'replica',
    status: 'unknown',
    reason: 'not-probed',
    priority: n.priority ?? 100,
    weight: n.weight ?? 1,
    tags: n.tags ?? [],
    lagBytes: null,
    lagMs: null,
    replayLsn: null,
    receiveLsn: null,
    timeline: null,
    lastCheckAt: null,
    since: new Date().toISOString(),
    consecutiveFailures: 0,
  };
}

/**
 * Routes queries locally by the latest topology: reads to the best replica
 * that satisfies the call's constraints, writes to the primary of the
 * highest epoch. No Redis or monitor call on the query path.
 */
export class Router extends EventEmitter<RouterEventMap> implements SessionHost {
  readonly cluster: string;
  readonly metrics: RouterMetrics;
  readonly #options: RouterOptions;
  readonly #log: RouterLogger;
  readonly #store = new TopologyStore();
  readonly #stats = new Map<string, NodeStats>();
  readonly #pools: PoolSet;
  readonly #classifier: ClassifierCache;
  readonly #budget: TokenBucket;
  readonly #bus: BusClient | undefined;
  #probe: ProbeSource | undefined;
  #busFreshAt = 0;
  #fallback = false;
  #freshnessTimer: NodeJS.Timeout | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;
  #readyWaiters: (() => void)[] = [];
  #changeWaiters: (() => void)[] = [];
  #token: DecodedToken | null = null;
  readonly #maxLagMs: number;
  readonly #staleAfterMs: number;
  readonly #maxWritePauseMs: number;
  readonly #waitForLsnMs: number;
  readonly #budgetWaitMs: number;
  readonly #ban: { baseMs: number; maxMs: number };

  constructor(options: RouterOptions) {
    super();
    if (!options.cluster) throw new RouterError('invalid-option', 'cluster is required: the name the monitor publishes under');
    if (!options.redis && !options.nodes?.length) throw new RouterError('invalid-option', 'give redis (the bus) or nodes (static topology, probed by the router)');
    this.#staleAfterMs = options.staleAfterMs ?? DEFAULT_ROUTER_OPTIONS.staleAfterMs;
    if (this.#staleAfterMs < MIN_STALE_AFTER_MS) throw new RouterError('invalid-option', `staleAfterMs must be at least ${MIN_STALE_AFTER_MS}, got ${this.#staleAfterMs}`);
    this.#maxLagMs = options.defaults?.maxLagMs ?? DEFAULT_ROUTER_OPTIONS.defaults.maxLagMs;
    this.#maxWritePauseMs = options.maxWritePauseMs ?? DEFAULT_ROUTER_OPTIONS.maxWritePauseMs;
    this.#waitForLsnMs = options.waitForLsnMs ?? DEFAULT_ROUTER_OPTIONS.waitForLsnMs;
    const budget = { ...DEFAULT_ROUTER_OPTIONS.fallbackBudget, ...options.fallbackBudget };
    this.#budgetWaitMs = budget.waitMs;
    this.#ban = { ...DEFAULT_ROUTER_OPTIONS.ban, ...options.ban };
    for (const [name, value] of Object.entries({ maxLagMs: this.#maxLagMs, maxWritePauseMs: this.#maxWritePauseMs, waitForLsnMs: this.#waitForLsnMs })) {
      if (!(value >= 0)) throw new RouterError('invalid-option', `${name} must be a number of milliseconds >= 0, got ${value}`);
    }
    this.#options = options;
    this.cluster = options.cluster;
    this.#log = options.logger ?? NOOP_LOGGER;
    this.#classifier = new ClassifierCache(undefined, { primaryFunctions: new Set(options.primaryFunctions ?? []) });
    this.#budget = new TokenBucket(budget.ratePerSec, budget.burst);
    this.metrics = new RouterMetrics(
      options.registry,
      () => this.#topologyAgeMs() / 1000,
      () => this.#fallback,
    );
    this.#pools = new PoolSet(options.connection, { ...DEFAULT_ROUTER_OPTIONS.pool, ...options.pool }, (err, nodeId) => {
      this.#log.warn({ err, nodeId }, 'idle pooled connection failed');
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });

    if (options.nodes?.length) {
      const nodes = options.nodes.map(nodeFromStatic);
      const primary = nodes.find((n) => n.role === 'primary');
      this.#store.setLocal(
        { cluster: options.cluster, epoch: 0, primaryId: primary?.id ?? null, systemIdentifier: null, nodes, observedAt: new Date().toISOString() },
        0,
      );
    }
    if (options.redis) {
      this.#bus = new BusClient(options.redis, options.cluster, options.busKey);
      this.#bus.on('event', (event) => this.#onBusEvent(event));
      this.#bus.on('rejected', (rejection, detail) => {
        this.metrics.events.inc({ outcome: rejection });
        this.#log.warn({ rejection, detail }, 'dropped a bus event that failed verification');
      });
      this.#bus.on('connected', () => void this.#bus?.reload());
      this.#bus.on('error', (err) => this.#log.debug({ err }, 'redis error'));
      this.#bus.start();
      void this.#bus.reload();
    } else {
      this.#startProbing();
    }
    this.#freshnessTimer = setInterval(() => this.#checkFreshness(), Math.min(1_000, this.#staleAfterMs / 4));
    this.#freshnessTimer.unref();
  }

  // --- topology -------------------------------------------------------------------

  #topologyAgeMs(): number {
    const at = this.#bus ? this.#busFreshAt : this.#store.freshAt;
    return at === 0 ? Number.POSITIVE_INFINITY : Date.now() - at;
  }

  #onBusEvent(event: BusEvent): void {
    const outcome = this.#store.apply(event, Date.now());
    this.metrics.events.inc({ outcome });
    if (outcome === 'stale' || outcome === 'old-epoch') return;
    this.#busFreshAt = Date.now();
    if (outcome === 'applied-gap' || event.type === 'primary.changed') void this.#bus?.reload();
    if (event.type === 'primary.changed') this.#log.info({ from: event.fromId, to: event.toId, epoch: event.epoch }, 'primary changed');
    this.#afterTopologyChange();
    this.#checkFreshness();
  }

  #afterTopologyChange(): void {
    const topology = this.#store.topology;
    if (!topology) return;
    this.#pools.retain(new Set(topology.nodes.map((n) => n.id)));
    for (const resolve of this.#readyWaiters.splice(0)) resolve();
    for (const wake of this.#changeWaiters.splice(0)) wake();
    this.emit('topology', topology);
  }

  #checkFreshness(): void {
    if (!this.#bus || this.#closed) return;
    const ageMs = this.#topologyAgeMs();
    const mode = this.#options.fallback ?? DEFAULT_ROUTER_OPTIONS.fallback;
    if (!this.#fallback && ageMs > this.#staleAfterMs) {
      this.#fallback = true;
      this.#log.warn({ ageMs: Number.isFinite(ageMs) ? ageMs : null, mode }, 'bus topology is stale: routing by the fallback');
      if (mode === 'probe') this.#startProbing();
      this.emit('fallback', { active: true, mode, ageMs });
    } else if (this.#fallback && ageMs <= this.#staleAfterMs) {
      this.#fallback = false;
      this.#probe?.stop();
      this.#log.info({ ageMs }, 'bus topology is fresh again');
      this.emit('fallback', { active: false, mode, ageMs });
    }
  }

  #startProbing(): void {
    const topology = this.#store.topology;
    if (!topology) return;
    if (this.#probe) {
      this.#probe.start();
      return;
    }
    const specs: NodeSpec[] = topology.nodes.map((n) => ({ id: n.id, host: n.host, port: n.port, priority: n.priority, weight: n.weight, zone: n.zone, tags: n.tags }));
    const c = this.#options.connection;
    this.#probe = new ProbeSource({
      cluster: this.cluster,
      nodes: specs,
      connection: { user: c.user ?? 'postgres', password: c.password, database: c.database ?? 'postgres', ssl: c.ssl },
      intervalMs: this.#options.probeIntervalMs ?? DEFAULT_ROUTER_OPTIONS.probeIntervalMs,
      known: { epoch: topology.epoch, primaryId: topology.primaryId, systemIdentifier: topology.systemIdentifier },
      onTopology: (t) => {
        // With a bus, probes only fill in while it is stale.
        if (this.#bus && !this.#fallback) return;
        this.#store.setLocal(t, Date.now());
        this.#afterTopologyChange();
      },
    });
    this.#probe.start();
  }

  /**
   * Resolves once a topology is known (from the bus, the seed nodes' probes,
   * or a reload). Rejects after `readyTimeoutMs`.
   */
  async ready(): Promise<void> {
    this.#assertOpen('ready()');
    if (this.#store.topology && (this.#store.topology.nodes.some((n) => n.status !== 'unknown') || this.#busFreshAt > 0)) return;
    const timeoutMs = this.#options.readyTimeoutMs ?? DEFAULT_ROUTER_OPTIONS.readyTimeoutMs;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.#store.topology) resolve();
        else reject(new RouterError('no-primary', `no topology after ${timeoutMs} ms: Redis unreachable and no seed nodes answer`));
      }, timeoutMs);
      timer.unref();
      this.#readyWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Waits for the next topology change, up to `ms`. */
  #nextChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      timer.unref();
      this.#changeWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  // --- helpers ----------------------------------------------------------------------

  #assertOpen(call: string): void {
    if (this.#closed) throw new RouterError('closed', `${call} called after close()`);
  }

  #statsOf(id: string): NodeStats {
    let stats = this.#stats.get(id);
    if (!stats) {
      stats = new NodeStats();
      this.#stats.set(id, stats);
    }
    return stats;
  }

  #target(node: Pick<NodeState, 'host' | 'port'>): string {
    const c = this.#options.connection;
    return `postgres://${encodeURIComponent(c.user ?? '')}@${node.host}:${node.port}/${encodeURIComponent(c.database ?? '')}`;
  }

  #effectiveToken(after: ConsistencyToken | null | undefined): DecodedToken | null {
    const explicit = after ? decodeToken(after) : null;
    const processWide = (this.#options.defaults?.consistency ?? 'eventual') === 'read-your-writes' ? this.#token : null;
    return laterToken(explicit, processWide);
  }

  async #exec<R extends pg.QueryResultRow>(node: NodeState, role: 'primary' | 'replica', reason: RouteReason, sql: string, params?: unknown[]): Promise<pg.QueryResult<R>> {
    const stats = this.#statsOf(node.id);
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
      const ms = performance.now() - started;
      stats.record(ms, true, Date.now());
      this.metrics.countQuery(node.id, role, 'ok', reason);
      this.metrics.observeDuration(role, ms / 1000);
      return result;
    } catch (err) {
      const connection = isConnectionError(err);
      client?.release(connection ? (err as Error) : undefined);
      stats.record(performance.now() - started, !connection, Date.now());
      if (!connection) stats.failed++;
      this.metrics.countQuery(node.id, role, connection ? 'connection-error' : 'sql-error', reason);
      if (connection) this.#banNode(node, err);
      throw err;
    } finally {
      stats.inFlight--;
    }
  }

  #banNode(node: NodeState, err: unknown): void {
    const ms = this.#statsOf(node.id).ban(Date.now(), this.#ban.baseMs, this.#ban.maxMs);
    this.#statsOf(node.id).lastError = (err as Error).message;
    this.metrics.bans.inc({ node: node.id });
    this.#log.warn({ nodeId: node.id, banMs: ms, err }, 'connection failure: node banned locally');
  }

  /** Whether `node` has replayed `lsn`, asking it (and waiting up to waitForLsnMs). */
  async #hasReplayed(node: NodeState, lsn: string): Promise<boolean> {
    const deadline = Date.now() + this.#waitForLsnMs;
    for (;;) {
      const { rows } = await this.#pools
        .pool(node)
        .query<{ ok: boolean; lsn: string | null }>('SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false) AS ok, pg_last_wal_replay_lsn()::text AS lsn', [lsn]);
      const row = rows[0];
      if (row?.lsn) this.#statsOf(node.id).observedReplayLsn = row.lsn;
      if (row?.ok) return true;
      if (Date.now() >= deadline) return false;
      await sleep(Math.min(10, deadline - Date.now()));
    }
  }

  // --- reads ------------------------------------------------------------------------

  /** Decides a read's target without running anything (no replay check). */
  #planRead(options: ReadOptions): { replicas: readonly RankedReplica[]; none: RouteReason | null; token: DecodedToken | null } {
    const token = this.#effectiveToken(options.after);
    const topology = this.#store.topology;
    if (!topology) return { replicas: [], none: 'primary:no-replica', token };
    if (this.#fallback && (this.#options.fallback ?? 'primary') === 'primary') return { replicas: [], none: 'primary:bus-stale', token };
    const constraints: ReadConstraints = { maxLagMs: options.maxLagMs ?? this.#maxLagMs, minLsn: token?.lsn };
    const ranking = rankReplicas(topology.nodes, this.#stats, constraints, Date.now());
    return {
      replicas: ranking.replicas,
      none: ranking.none,
      token,
    };
  }

  async #read<R extends pg.QueryResultRow>(sql: string, params: unknown[] | undefined, options: ReadOptions): Promise<pg.QueryResult<R>> {
    this.#assertOpen('read()');
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
        return await this.#exec<R>(node, 'replica', why, sql, params);
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
    const primary = this.#store.primary();
    if (!primary) throw new RouterError('no-primary', `no primary known for cluster ${this.cluster} (epoch ${this.#store.epoch})`);
    return this.#exec<R>(primary, 'primary', reason, sql, params);
  }

  // --- writes -----------------------------------------------------------------------

  async #waitWritable(deadline: number): Promise<NodeState> {
    for (;;) {
      const sw = this.#store.switchover;
      const held = sw !== null && Date.now() - sw.startedAt < this.#maxWritePauseMs;
      const primary = held ? null : this.#store.primary();
      if (primary) return primary;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new RouterError(
          held ? 'write-pause-timeout' : 'no-primary',
          held ? `writes held by a switchover for more than ${this.#maxWritePauseMs} ms` : `no primary known for cluster ${this.cluster}`,
        );
      }
      await this.#nextChange(Math.min(left, 100));
    }
  }

  /** After a write failed without running: look for a new primary (reload), wait a little. */
  async #refresh(): Promise<void> {
    if (this.#bus) await this.#bus.reload();
    else await this.#probe?.probeOnce().catch(() => {});
    await this.#nextChange(100);
  }

  async #write<R extends pg.QueryResultRow>(sql: string, params: unknown[] | undefined, wantToken: boolean, reason: RouteReason): Promise<{ result: pg.QueryResult<R>; token: DecodedToken | null }> {
    this.#assertOpen('write()');
    const deadline = Date.now() + this.#maxWritePauseMs;
    let lastError: unknown;
    for (;;) {
      let primary: NodeState;
      try {
        primary = await this.#waitWritable(deadline);
      } catch (err) {
        throw lastError && (err as RouterError).code === 'no-primary' ? lastError : err;
      }
      const epoch = this.#store.epoch;
      let client: pg.PoolClient;
      const stats = this.#statsOf(primary.id);
      const started = performance.now();
      try {
        client = await this.#pools.writeClient(primary, epoch, this.#store.topology?.systemIdentifier ?? null);
      } catch (err) {
        if (!isConnectionError(err) || Date.now() >= deadline) throw err;
        // It certainly did not run: find the (new) primary and try again.
        lastError = err;
        stats.addError(Date.now());
        this.metrics.writeRetries.inc({ cause: (err as RouterError).code === 'fenced' ? 'fenced' : 'connect' });
        await this.#refresh();
        continue;
      }
      stats.inFlight++;
      try {
        const result = await client.query<R>(sql, params);
        let token: DecodedToken | null = null;
        if (wantToken) {
          const { rows } = await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
          token = { epoch, lsn: rows[0]!.lsn };
        }
        client.release();
        const ms = performance.now() - started;
        stats.record(ms, true, Date.now());
        this.metrics.countQuery(primary.id, 'primary', 'ok', reason);
        this.metrics.observeDuration('primary', ms / 1000);
        return { result, token };
      } catch (err) {
        const connection = isConnectionError(err);
        client.release(connection ? (err as Error) : undefined);
        stats.record(performance.now() - started, !connection, Date.now());
        this.metrics.countQuery(primary.id, 'primary', connection ? 'connection-error' : 'sql-error', reason);
        if (sqlState(err) === '25006' && Date.now() < deadline) {
          // Refused by a read-only server (demoted): it did not run. Retry on the new primary.
          lastError = err;
          this.metrics.writeRetries.inc({ cause: 'read-only' });
          await this.#refresh();
          continue;
        }
        // A connection lost mid-statement may or may not have run it: never retried.
        throw err;
      } finally {
        stats.inFlight--;
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
    this.#assertOpen('query()');
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
    this.#assertOpen('transaction()');
    if (options.readOnly) {
      const plan = this.#planRead(options);
      for (const { node, lsn } of plan.replicas) {
        if (plan.token && lsn === 'check' && !(await this.#hasReplayed(node, plan.token.lsn).catch(() => false))) continue;
        let client: pg.PoolClient;
        try {
          client = await this.#pools.pool(node).connect();
        } catch (err) {
          if (!isConnectionError(err)) throw err;
          this.#banNode(node, err);
          continue;
        }
        return { value: await this.#runTx(client, node, 'replica', 'BEGIN READ ONLY', fn), token: null };
      }
      const primary = this.#store.primary();
      if (!primary) throw new RouterError('no-primary', `no primary known for cluster ${this.cluster}`);
      this.metrics.fallbacks.inc({ reason: plan.none ?? 'primary:transaction' });
      return { value: await this.#runTx(await this.#pools.pool(primary).connect(), primary, 'primary', 'BEGIN READ ONLY', fn), token: null };
    }
    const deadline = Date.now() + this.#maxWritePauseMs;
    for (;;) {
      const primary = await this.#waitWritable(deadline);
      let client: pg.PoolClient;
      try {
        client = await this.#pools.writeClient(primary, this.#store.epoch, this.#store.topology?.systemIdentifier ?? null);
      } catch (err) {
        if (!isConnectionError(err) || Date.now() >= deadline) throw err;
        this.metrics.writeRetries.inc({ cause: 'connect' });
        await this.#refresh();
        continue;
      }
      const epoch = this.#store.epoch;
      let lsn: string | undefined;
      const value = await this.#runTx(client, primary, 'primary', 'BEGIN', fn, async () => {
        lsn = (await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]?.lsn;
      });
      const token = lsn ? { epoch, lsn } : null;
      this.#noteToken(token);
      return { value, token: token ? encodeToken(token) : null };
    }
  }

  async #runTx<T>(client: pg.PoolClient, node: NodeState, role: 'primary' | 'replica', begin: string, fn: (tx: TransactionClient) => Promise<T>, afterCommit?: () => Promise<void>): Promise<T> {
    const stats = this.#statsOf(node.id);
    stats.inFlight++;
    const started = performance.now();
    let broken: Error | undefined;
    try {
      await client.query(begin);
      const value = await fn({ query: (sql, params) => client.query(sql, params) });
      await client.query('COMMIT');
      await afterCommit?.();
      stats.record(performance.now() - started, true, Date.now());
      this.metrics.countQuery(node.id, role, 'ok', 'primary:transaction');
      return value;
    } catch (err) {
      if (isConnectionError(err)) broken = err as Error;
      else await client.query('ROLLBACK').catch((e: unknown) => (broken = e as Error));
      stats.record(performance.now() - started, !broken, Date.now());
      this.metrics.countQuery(node.id, role, broken ? 'connection-error' : 'sql-error', 'primary:transaction');
      throw err;
    } finally {
      stats.inFlight--;
      client.release(broken);
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
    const primary = this.#store.primary();
    return { nodeId: primary?.id ?? null, role: primary ? 'primary' : null, reason: plan.none ?? 'primary:no-replica', target: primary ? this.#target(primary) : null };
  }

  /** The replica a plain read would use now, or null. */
  getBestReplica(options: ReadOptions = {}): NodeState | null {
    return this.#planRead(options).replicas[0]?.node ?? null;
  }

  /** The primary writes go to now. */
  getWriteTarget(): RouteDecision {
    const primary = this.#store.primary();
    return { nodeId: primary?.id ?? null, role: primary ? 'primary' : null, reason: 'primary:write', target: primary ? this.#target(primary) : null };
  }

  /** The topology the router routes by, and its age. */
  getTopology(): { topology: Topology | null; ageMs: number; fallback: boolean; epoch: number } {
    return { topology: this.#store.topology, ageMs: this.#topologyAgeMs(), fallback: this.#fallback, epoch: this.#store.epoch };
  }

  /** Per-node figures: status, role, lag, health check, failures, queries, success rate. Passwords never appear. */
  getMetrics(): NodeMetrics[] {
    const now = Date.now();
    return (this.#store.topology?.nodes ?? []).map((n) => {
      const s = this.#stats.get(n.id);
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
      this.#closed = true;
      clearInterval(this.#freshnessTimer);
      for (const wake of this.#changeWaiters.splice(0)) wake();
      await this.#bus?.close().catch(() => {});
      await this.#probe?.close().catch(() => {});
      await this.#pools.close();
    })();
    return this.#closing;
  }
}

/** Creates a router. Call `await router.ready()` before the first query. */
export function createRouter(options: RouterOptions): Router {
  return new Router(options);
}
