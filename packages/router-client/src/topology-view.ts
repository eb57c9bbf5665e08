/**
 * The router's picture of the cluster and how fresh it is: the bus
 * subscription, catch-up and reloads, staleness and the fallback probes,
 * discovery of a newer epoch, and the waiters of ready() and of a change.
 * Longer than most files (about 300 lines) because these share one state
 * machine — splitting them would spread its transitions over several files.
 */
import type { NodeSpec } from '@pgreplica/probe';
import { type BusEvent, isGap, type NodeState, type Topology } from '@pgreplica/protocol';
import { BusClient } from './bus-client.js';
import { RouterError } from './errors.js';
import type { RouterMetrics } from './metrics.js';
import { DEFAULT_ROUTER_OPTIONS, type RouterLogger, type RouterOptions, type StaticNode } from './options.js';
import { ProbeSource } from './probe-source.js';
import type { RouterEventMap } from './router-types.js';
import { TopologyStore } from './topology-store.js';

/** What a {@link TopologyView} tells its router. */
export interface TopologyViewHooks {
  /** The topology changed (bus event, reload or local probe). */
  onTopology(topology: Topology): void;
  /** The bus went stale or fresh again. */
  onFallback(state: RouterEventMap['fallback'][0]): void;
  /** A problem the host should hear of (a staleness bound below what the monitor's heartbeat allows). */
  onError(err: Error): void;
  /** The epoch rose: a new primary. */
  onEpoch(epoch: number): void;
}

/** How far the monitor's clock and the router's may differ before an event counts as replayed. */
export const DEFAULT_MAX_CLOCK_SKEW_MS = 30_000;

/** Silence of this many of the monitor's heartbeats makes the bus stale. */
export const STALE_HEARTBEATS = 3;
/** The monitor's heartbeat until a snapshot says otherwise (its documented default). */
export const DEFAULT_MONITOR_HEARTBEAT_MS = 5_000;

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
 * The topology a router routes by, and where it comes from: the static or
 * seed nodes, the bus, and the router's own probes while the bus is stale
 * (`fallback: 'probe'`) or absent. Watches the bus's freshness, and lets
 * callers wait for a first topology or the next change. Whether the router
 * is closed lives here too, since closing starts by stopping this intake.
 */
export class TopologyView {
  readonly store = new TopologyStore();
  readonly #options: RouterOptions;
  /** `staleAfterMs` as given; undefined: derived from the monitor's heartbeat. */
  readonly #explicitStaleAfterMs: number | undefined;
  #warnedStaleBound = 0;
  readonly #startedAt = Date.now();
  readonly #log: RouterLogger;
  readonly #metrics: RouterMetrics;
  readonly #hooks: TopologyViewHooks;
  readonly #bus: BusClient | undefined;
  #probe: ProbeSource | undefined;
  #busFreshAt = 0;
  #epochSeen = 0;
  /** A catch-up from the stream in progress, and the channel events held until it ends. */
  #catchingUp: Promise<void> | undefined;
  #held: BusEvent[] = [];
  #fallback = false;
  readonly #freshnessTimer: NodeJS.Timeout;
  #closed = false;
  #readyWaiters: (() => void)[] = [];
  readonly #changeWaiters = new Set<() => void>();
  /** Callbacks of {@link whenEpochPasses}, each removing itself once it fired. */
  readonly #epochWatchers = new Set<() => void>();

  /** Seeds the static nodes, then subscribes to the bus or starts probing. @throws RouterError (`invalid-option`) for a node without an address. */
  constructor(options: RouterOptions, staleAfterMs: number | undefined, log: RouterLogger, metrics: RouterMetrics, hooks: TopologyViewHooks) {
    this.#options = options;
    this.#explicitStaleAfterMs = staleAfterMs;
    this.#log = log;
    this.#metrics = metrics;
    this.#hooks = hooks;
    if (options.nodes?.length) {
      const nodes = options.nodes.map(nodeFromStatic);
      const primary = nodes.find((n) => n.role === 'primary');
      this.store.setLocal(
        { cluster: options.cluster, epoch: 0, primaryId: primary?.id ?? null, systemIdentifier: null, nodes, observedAt: new Date().toISOString() },
        0,
      );
    }
    if (options.redis) {
      this.#bus = new BusClient(options.redis, options.cluster, options.busKey, {
        maxAgeMs: () => this.staleAfterMs,
        maxSkewMs: options.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS,
      });
      this.#bus.on('event', (event, via) => this.#onBusEvent(event, via));
      this.#bus.on('rejected', (rejection, detail) => {
        this.#metrics.events.inc({ outcome: rejection });
        this.#log.warn({ rejection, detail }, 'dropped a bus event that failed verification');
      });
      // Pub/sub is at-most-once: after every (re)subscription, the snapshot, then what was published since.
      this.#bus.on('connected', () => void this.#bus?.reloadUntilRead().then(() => this.#catchUp()));
      this.#bus.on('error', (err) => this.#log.debug({ err }, 'redis error'));
      this.#bus.start();
      void this.#bus.reload();
    } else {
      this.#startProbing();
    }
    this.#freshnessTimer = setInterval(() => this.#checkFreshness(), Math.min(1_000, this.staleAfterMs / 4));
    this.#freshnessTimer.unref();
  }

  /**
   * How long the bus may be silent before it is stale: {@link STALE_HEARTBEATS}
   * of the monitor's heartbeats (the snapshot says how often it publishes),
   * never less. An explicit `staleAfterMs` below that is refused (an `error`
   * event, once) and the derived bound used: on a quiet cluster every
   * router would otherwise flip to its fallback each cycle.
   */
  get staleAfterMs(): number {
    const heartbeatMs = this.store.topology?.heartbeatMs;
    const derived = STALE_HEARTBEATS * (heartbeatMs ?? DEFAULT_MONITOR_HEARTBEAT_MS);
    const explicit = this.#explicitStaleAfterMs;
    // Before a snapshot told the monitor's heartbeat, an explicit bound is all there is.
    if (explicit === undefined || explicit >= derived || heartbeatMs === undefined) return explicit ?? derived;
    if (this.#warnedStaleBound !== derived) {
      this.#warnedStaleBound = derived;
      const err = new RouterError(
        'invalid-option',
        `staleAfterMs ${explicit} is below ${STALE_HEARTBEATS} of the monitor's heartbeats (${derived} ms): using ${derived} ms; raise it or leave it unset`,
      );
      this.#log.warn({ staleAfterMs: explicit, derivedMs: derived }, err.message);
      this.#hooks.onError(err);
    }
    return derived;
  }

  /** Whether the router routes by its fallback (the bus is stale). */
  get fallback(): boolean {
    return this.#fallback;
  }

  /** @throws RouterError (`closed`) naming `call` once {@link close} was called. */
  assertOpen(call: string): void {
    if (this.#closed) throw new RouterError('closed', `${call} called after close()`);
  }

  /** Age of the topology: since the last bus event with a bus, else since the last local update. */
  ageMs(): number {
    const at = this.#bus ? this.#busFreshAt : this.store.freshAt;
    return at === 0 ? Number.POSITIVE_INFINITY : Date.now() - at;
  }

  #onBusEvent(event: BusEvent, via: 'channel' | 'reload' | 'stream'): void {
    if (via === 'channel' && (this.#catchingUp || isGap(event, this.store.position))) {
      // Events were missed. Each event is in the stream before it is published, this one
      // included: replay from the stream in order. Applying this one first would move the
      // position past the missed ones, and the catch-up would then skip them as old.
      this.#held.push(event);
      void this.#catchUp();
      return;
    }
    this.#apply(event);
  }

  /**
   * Replays the stream after the store's position, then applies the channel
   * events held meanwhile (those the stream had are old by then, and
   * dropped; when Redis did not answer, they apply as they are).
   */
  #catchUp(): Promise<void> {
    this.#catchingUp ??= (async () => {
      try {
        await this.#bus?.catchUp(() => this.store.position);
      } finally {
        this.#catchingUp = undefined;
        for (const event of this.#held.splice(0)) this.#apply(event);
      }
    })();
    return this.#catchingUp;
  }

  #apply(event: BusEvent): void {
    const outcome = this.store.apply(event, Date.now());
    this.#metrics.events.inc({ outcome });
    if (outcome === 'stale' || outcome === 'old-epoch') return;
    this.#busFreshAt = Date.now();
    if (outcome === 'applied-reset') this.#log.warn({ term: event.term, epoch: event.epoch }, 'the bus was reset (its term went back): following its newer snapshot');
    if (event.type === 'primary.changed') void this.#bus?.reload();
    if (event.type === 'primary.changed') this.#log.info({ from: event.fromId, to: event.toId, epoch: event.epoch }, 'primary changed');
    this.#afterTopologyChange();
    this.#checkFreshness();
  }

  #afterTopologyChange(): void {
    const topology = this.store.topology;
    if (!topology) return;
    if (topology.epoch > this.#epochSeen) {
      if (this.#epochSeen > 0) this.#hooks.onEpoch(topology.epoch);
      this.#epochSeen = topology.epoch;
    }
    for (const resolve of this.#readyWaiters.splice(0)) resolve();
    const waiters = [...this.#changeWaiters];
    this.#changeWaiters.clear();
    for (const wake of waiters) wake();
    for (const watcher of [...this.#epochWatchers]) watcher();
    this.#hooks.onTopology(topology);
  }

  #checkFreshness(): void {
    if (!this.#bus || this.#closed) return;
    // Before the first event the router is starting, not stale: it says so only once the bound passed.
    const ageMs = this.#busFreshAt === 0 ? Date.now() - this.#startedAt : this.ageMs();
    const mode = this.#options.fallback ?? DEFAULT_ROUTER_OPTIONS.fallback;
    const staleAfterMs = this.staleAfterMs;
    if (!this.#fallback && ageMs > staleAfterMs) {
      this.#fallback = true;
      this.#log.warn({ ageMs, mode, heardFromBus: this.#busFreshAt > 0 }, 'bus topology is stale: routing by the fallback');
      // Whatever the mode, the primary is then confirmed by asking the nodes (highest epoch wins).
      this.#startProbing();
      this.#hooks.onFallback({ active: true, mode, ageMs });
    } else if (this.#fallback && ageMs <= staleAfterMs) {
      this.#fallback = false;
      this.#probe?.stop();
      this.#log.info({ ageMs }, 'bus topology is fresh again');
      this.#hooks.onFallback({ active: false, mode, ageMs });
    }
  }

  /** The router's own probes (created on first use, from the nodes the topology lists). */
  #probeSource(): ProbeSource | undefined {
    if (this.#probe) return this.#probe;
    const topology = this.store.topology;
    if (!topology) return undefined;
    const specs: NodeSpec[] = topology.nodes.map((n) => ({ id: n.id, host: n.host, port: n.port, priority: n.priority, weight: n.weight, zone: n.zone, tags: n.tags }));
    const c = this.#options.connection;
    this.#probe = new ProbeSource({
      cluster: this.#options.cluster,
      nodes: specs,
      connection: { user: c.user ?? 'postgres', password: c.password, database: c.database ?? 'postgres', ssl: c.ssl },
      intervalMs: this.#options.probeIntervalMs ?? DEFAULT_ROUTER_OPTIONS.probeIntervalMs,
      known: () => {
        const t = this.store.topology;
        return { epoch: t?.epoch ?? 0, primaryId: t?.primaryId ?? null, systemIdentifier: t?.systemIdentifier ?? null };
      },
      onTopology: (t) => {
        // With a bus, probes only fill in while it is stale.
        if (this.#bus && !this.#fallback) return;
        this.store.setLocal(t, Date.now());
        this.#afterTopologyChange();
      },
    });
    return this.#probe;
  }

  #startProbing(): void {
    this.#probeSource()?.start();
  }

  /**
   * Resolves once a topology is known (from the bus, the seed nodes' probes,
   * or a reload). After `readyTimeoutMs` it resolves if there is a topology
   * at all (unprobed seed nodes count), else rejects.
   */
  async ready(): Promise<void> {
    this.assertOpen('ready()');
    if (this.store.topology && (this.store.topology.nodes.some((n) => n.status !== 'unknown') || this.#busFreshAt > 0)) return;
    const timeoutMs = this.#options.readyTimeoutMs ?? DEFAULT_ROUTER_OPTIONS.readyTimeoutMs;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.store.topology) resolve();
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
  /**
   * Calls `fn` once, when the router's epoch moves past `epoch` (at once if
   * it has). Returns a function that cancels the watch. No timer: the cost
   * is a Set entry, for the hot path.
   */
  whenEpochPasses(epoch: number, fn: () => void): () => void {
    if (this.store.epoch > epoch) {
      fn();
      return () => {};
    }
    const watcher = () => {
      if (this.store.epoch <= epoch) return;
      this.#epochWatchers.delete(watcher);
      fn();
    };
    this.#epochWatchers.add(watcher);
    return () => this.#epochWatchers.delete(watcher);
  }

  nextChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      // On timeout the waiter leaves the set: a loop waiting through a long quiet spell keeps one entry, not one per turn.
      const timer = setTimeout(() => {
        this.#changeWaiters.delete(wake);
        resolve();
      }, ms);
      timer.unref();
      this.#changeWaiters.add(wake);
    });
  }

  /**
   * After a write failed without running: look for the primary again. The bus
   * snapshot when it is fresh; otherwise — and after the snapshot still names
   * a primary that refused — the nodes themselves are asked, and the writable
   * one whose database records the highest epoch wins (a deposed primary
   * restarted writable keeps a lower one). Then waits a little for a change.
   */
  async refresh(): Promise<void> {
    const before = this.store.primary()?.id;
    const reloaded = this.#bus ? await this.#bus.reload() : false;
    if (!reloaded || this.#fallback || this.store.primary()?.id === before) await this.discover();
    await this.nextChange(100);
  }

  /** Asks the nodes who the primary is (highest recorded epoch among writable nodes) and adopts the answer. */
  async discover(): Promise<void> {
    const found = await this.#probeSource()?.probeOnce().catch(() => null);
    if (!found || this.#closed) return;
    const current = this.store.topology;
    if (current && (found.epoch < current.epoch || (found.epoch === current.epoch && found.primaryId === current.primaryId))) return;
    this.#log.warn({ primaryId: found.primaryId, epoch: found.epoch }, 'primary found by asking the nodes (highest recorded epoch)');
    // The probes see roles, not lag: a replica keeps the lag and health the bus last gave it.
    const nodes = found.nodes.map((n) => {
      const known = current?.nodes.find((k) => k.id === n.id);
      return n.role === 'replica' && n.lagMs === null && known?.role === 'replica' ? { ...n, lagMs: known.lagMs, lagBytes: known.lagBytes, status: known.status, reason: known.reason } : n;
    });
    this.store.setLocal({ ...(current ?? found), epoch: found.epoch, primaryId: found.primaryId, systemIdentifier: found.systemIdentifier ?? current?.systemIdentifier ?? null, nodes }, Date.now());
    this.#afterTopologyChange();
  }

  /** A write server records a later epoch than this view: it is behind; catch up (bus, then the nodes). */
  noteNewerEpoch(nodeId: string, epoch: number): void {
    this.#log.info({ nodeId, epoch, known: this.store.epoch }, 'a server records a later epoch than this router knows');
    void (async () => {
      if (this.#bus) await this.#bus.reload();
      if (this.store.epoch < epoch) await this.discover();
    })();
  }

  /** Marks the router closed, wakes whoever waits for a change, and closes the bus and the probes. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#freshnessTimer);
    const waiters = [...this.#changeWaiters];
    this.#changeWaiters.clear();
    for (const wake of waiters) wake();
    await this.#bus?.close().catch(() => {});
    await this.#probe?.close().catch(() => {});
  }
}
