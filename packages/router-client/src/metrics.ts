import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The router's metrics, in the app's registry or a private one. */
export class RouterMetrics {
  readonly registry: Registry;
  readonly queries: Counter<'node' | 'role' | 'outcome' | 'reason'>;
  readonly duration: Histogram<'role'>;
  readonly fallbacks: Counter<'reason'>;
  readonly events: Counter<'outcome'>;
  readonly bans: Counter<'node'>;
  readonly topologyAge: Gauge;
  readonly fallbackActive: Gauge;
  readonly writeRetries: Counter<'cause'>;

  readonly #queryChildren = new Map<string, { inc(): void }>();
  readonly #durationChildren = new Map<string, { observe(v: number): void }>();

  /**
   * Counts one routed call. Label children are cached: resolving labels on
   * every call costs more than the routing decision itself.
   */
  countQuery(node: string, role: string, outcome: string, reason: string): void {
    const key = `${node}\0${role}\0${outcome}\0${reason}`;
    let child = this.#queryChildren.get(key);
    if (!child) {
      child = this.queries.labels(node, role, outcome, reason);
      this.#queryChildren.set(key, child);
    }
    child.inc();
  }

  /** Observes one call's duration in seconds. */
  observeDuration(role: string, seconds: number): void {
    let child = this.#durationChildren.get(role);
    if (!child) {
      child = this.duration.labels(role);
      this.#durationChildren.set(role, child);
    }
    child.observe(seconds);
  }

  constructor(registry: Registry | undefined, topologyAgeSeconds: () => number, fallbackActive: () => boolean) {
    this.registry = registry ?? new Registry();
    const registers = [this.registry];
    this.queries = new Counter({ name: 'pgreplica_router_queries_total', help: 'Routed calls by node, role, outcome and routing reason.', labelNames: ['node', 'role', 'outcome', 'reason'], registers });
    this.duration = new Histogram({
      name: 'pgreplica_router_query_duration_seconds',
      help: 'Duration of routed calls, by role of the node that served them.',
      labelNames: ['role'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.fallbacks = new Counter({ name: 'pgreplica_router_fallbacks_total', help: 'Reads that went to the primary (or failed) for lack of a qualifying replica, by reason.', labelNames: ['reason'], registers });
    this.events = new Counter({ name: 'pgreplica_router_bus_events_total', help: 'Bus events by outcome: applied, stale, gap, old-epoch, or a rejection reason.', labelNames: ['outcome'], registers });
    this.bans = new Counter({ name: 'pgreplica_router_node_bans_total', help: 'Local bans of a node after connection failures.', labelNames: ['node'], registers });
    this.writeRetries = new Counter({ name: 'pgreplica_router_write_retries_total', help: 'Writes retried because they certainly did not run.', labelNames: ['cause'], registers });
    this.topologyAge = new Gauge({
      name: 'pgreplica_router_topology_age_seconds',
      help: 'Age of the topology the router routes by.',
      registers,
      collect() {
        this.set(topologyAgeSeconds());
      },
    });
    this.fallbackActive = new Gauge({
      name: 'pgreplica_router_fallback_active',
      help: 'Whether the router runs on its fallback (bus stale).',
      registers,
      collect() {
        this.set(fallbackActive() ? 1 : 0);
      },
    });
  }
}
