import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ROUTE_REASONS, type RouteReason } from './selection.js';

/** How a routed call ended: a metric label. */
export type QueryOutcome = 'ok' | 'sql-error' | 'connection-error';

const ROLES = ['primary', 'replica'] as const;
const OUTCOMES = ['ok', 'sql-error', 'connection-error'] as const;
const REASON_INDEX = new Map<string, number>(ROUTE_REASONS.map((reason, i) => [reason, i]));
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * One node's count of routed calls by role, outcome and reason: a flat array
 * of plain numbers, so counting a call is one increment (prom-client's
 * `labels().inc()` hashes the labels on every call).
 */
export class NodeQueryCounts {
  readonly counts = new Float64Array(ROLES.length * OUTCOMES.length * ROUTE_REASONS.length);

  add(role: 'primary' | 'replica', outcome: QueryOutcome, reason: RouteReason): void {
    const o = outcome === 'ok' ? 0 : outcome === 'sql-error' ? 1 : 2;
    this.counts[((role === 'replica' ? 1 : 0) * OUTCOMES.length + o) * ROUTE_REASONS.length + REASON_INDEX.get(reason)!]!++;
  }
}

/** A histogram's state as plain numbers: per-bucket (not cumulative) counts, the overflow last. */
class DurationSamples {
  readonly buckets = new Float64Array(DURATION_BUCKETS.length + 1);
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    let i = 0;
    while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++;
    this.buckets[i]!++;
    this.sum += seconds;
    this.count++;
  }
}

/** prom-client's per-label-set histogram record (its `zero()` creates one; `collect()` fills it in). */
interface HistogramRecord {
  labels: Record<string, string>;
  bucketValues: Record<number, number>;
  sum: number;
  count: number;
}

/**
 * The router's metrics, in the app's registry or a private one. The per-call
 * figures (calls by node, role, outcome and reason; durations; read
 * fallbacks) are plain numbers on the hot path and reach prom-client in its
 * `collect()` callbacks, when the registry is scraped.
 */
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

  readonly #perNode = new Map<string, NodeQueryCounts>();
  readonly #durations = { primary: new DurationSamples(), replica: new DurationSamples() };
  readonly #fallbackCounts = new Map<string, number>();

  constructor(registry: Registry | undefined, topologyAgeSeconds: () => number, fallbackActive: () => boolean) {
    this.registry = registry ?? new Registry();
    const registers = [this.registry];
    const perNode = this.#perNode;
    const durations = this.#durations;
    const fallbackCounts = this.#fallbackCounts;
    this.queries = new Counter({
      name: 'pgreplica_router_queries_total',
      help: 'Routed calls by node, role, outcome and routing reason.',
      labelNames: ['node', 'role', 'outcome', 'reason'],
      registers,
      collect() {
        this.reset();
        for (const [node, { counts }] of perNode) {
          counts.forEach((value, i) => {
            if (value === 0) return;
            const reason = ROUTE_REASONS[i % ROUTE_REASONS.length]!;
            const rest = Math.floor(i / ROUTE_REASONS.length);
            this.inc({ node, role: ROLES[Math.floor(rest / OUTCOMES.length)]!, outcome: OUTCOMES[rest % OUTCOMES.length]!, reason }, value);
          });
        }
      },
    });
    this.duration = new Histogram({
      name: 'pgreplica_router_query_duration_seconds',
      help: 'Duration of routed calls, by role of the node that served them.',
      labelNames: ['role'],
      buckets: DURATION_BUCKETS,
      registers,
      collect() {
        this.reset();
        for (const role of ROLES) {
          const samples = durations[role];
          if (samples.count === 0) continue;
          this.zero({ role });
          const record = Object.values((this as unknown as { hashMap: Record<string, HistogramRecord> }).hashMap).find((r) => r.labels.role === role);
          if (!record) continue;
          DURATION_BUCKETS.forEach((bound, i) => {
            record.bucketValues[bound] = samples.buckets[i]!;
          });
          record.sum = samples.sum;
          record.count = samples.count;
        }
      },
    });
    this.fallbacks = new Counter({
      name: 'pgreplica_router_fallbacks_total',
      help: 'Reads that went to the primary (or failed) for lack of a qualifying replica, by reason.',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        for (const [reason, value] of fallbackCounts) this.inc({ reason }, value);
      },
    });
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

  /** The call counters of a node, created on first use (keep it: counting through it is one increment). */
  countsOf(node: string): NodeQueryCounts {
    let counts = this.#perNode.get(node);
    if (!counts) {
      counts = new NodeQueryCounts();
      this.#perNode.set(node, counts);
    }
    return counts;
  }

  /** Counts one routed call. */
  countQuery(node: string, role: 'primary' | 'replica', outcome: QueryOutcome, reason: RouteReason): void {
    this.countsOf(node).add(role, outcome, reason);
  }

  /** Observes one call's duration in seconds. */
  observeDuration(role: 'primary' | 'replica', seconds: number): void {
    this.#durations[role].observe(seconds);
  }

  /** Counts one read that went to the primary (or failed) for lack of a qualifying replica. */
  countFallback(reason: RouteReason): void {
    this.#fallbackCounts.set(reason, (this.#fallbackCounts.get(reason) ?? 0) + 1);
  }
}
