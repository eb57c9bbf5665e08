import { compareLsn, type NodeState, type NodeStatus } from '@pgreplica/protocol';
import type { NodeStats } from './node-stats.js';

/** Every {@link RouteReason}, in a fixed order (metrics index their counters by it). */
export const ROUTE_REASONS = [
  'replica:lag-ok',
  'replica:token-replayed',
  'replica:token-check',
  'primary:write',
  'primary:classified-write',
  'primary:explicit',
  'primary:no-replica',
  'primary:lag',
  'primary:token-not-replayed',
  'primary:bus-stale',
  'primary:fallback-budget',
  'primary:replica-failed',
  'primary:read-only-refusal',
  'primary:transaction',
  'primary:down',
] as const;

/** Why a call went where it went; a metric label and part of `explain()`. */
export type RouteReason = (typeof ROUTE_REASONS)[number];

/** Constraints of one read. */
export interface ReadConstraints {
  /** Staleness bound; replicas with unknown or larger lag do not qualify. */
  maxLagMs?: number | undefined;
  /** Read-your-writes: the replica must have replayed this LSN. */
  minLsn?: string | undefined;
}

/** A replica that qualifies, and whether it is known to satisfy `minLsn` or must be checked. */
export interface RankedReplica {
  node: NodeState;
  /** `known`: topology or local checks prove it replayed minLsn; `check`: ask the node first. */
  lsn: 'known' | 'check' | 'none';
  cost: number;
}

/** Result of {@link rankReplicas}: ordered candidates, or why there are none. */
export interface Ranking {
  replicas: RankedReplica[];
  /** When `replicas` is empty: the reason a read goes to the primary. */
  none: RouteReason | null;
}

const STATUS_ORDER: Record<NodeStatus, number> = { healthy: 0, degraded: 1, unhealthy: 9, unknown: 9 };

/** Share of reads sent to a random qualifying replica so a slow one keeps a fresh latency estimate. */
export const EXPLORATION_SHARE = 0.03;

/**
 * Added to every latency estimate: sub-millisecond differences between
 * replicas are noise, not a reason to prefer one (they would make one of two
 * equal replicas take every sequential read).
 */
export const LATENCY_FLOOR_MS = 1;

/**
 * Load cost of a node: (in flight / weight + 1) × (latency + floor) × error
 * penalty. Lower is better. Weight scales how much concurrent work a node
 * takes before it counts as busier; among near-equal costs it is also the
 * share of reads each gets.
 */
export function loadCost(node: NodeState, stats: NodeStats | undefined, now: number): number {
  const latency = stats?.latencyEwmaMs ?? 0;
  const inFlight = stats?.inFlight ?? 0;
  const errors = stats?.errorScore(now) ?? 0;
  const weight = node.weight > 0 ? node.weight : 0.0001;
  return (inFlight / weight + 1) * (latency + LATENCY_FLOOR_MS) * (1 + 4 * errors);
}

/** Whether a node may take routed reads at all: a replica, healthy or degraded, not `noloadbalance`, not banned. */
function usable(n: NodeState, stats: NodeStats | undefined, now: number): boolean {
  return n.role === 'replica' && (n.status === 'healthy' || n.status === 'degraded') && !n.tags.includes('noloadbalance') && !(stats !== undefined && now < stats.bannedUntil);
}

/**
 * A node's lag now. A `stale` replica (its primary unreachable) falls
 * further behind every millisecond, while the bus says how far it was when
 * the monitor last checked it (a snapshot may be a heartbeat old): its lag
 * grows from that check on. Clock skew between the monitor and this host
 * can only shift when it stops qualifying; never below what the bus said.
 */
export function lagNowMs(n: NodeState, now: number): number | null {
  if (n.lagMs === null || n.reason !== 'stale' || n.lastCheckAt === null) return n.lagMs;
  return n.lagMs + Math.max(0, now - Date.parse(n.lastCheckAt));
}

function lagOk(n: NodeState, maxLagMs: number | undefined, now: number): boolean {
  if (maxLagMs === undefined) return true;
  const lag = lagNowMs(n, now);
  return lag !== null && lag <= maxLagMs;
}

/** Share of reads a peer gets: ∝ weight / cost², blended with {@link EXPLORATION_SHARE} spread evenly. */
function peerShares(peers: readonly { node: NodeState; cost: number }[]): number[] {
  const raw = peers.map((r) => Math.max(r.node.weight, 0.0001) / r.cost ** 2);
  const total = raw.reduce((a, b) => a + b, 0);
  return raw.map((share) => (1 - EXPLORATION_SHARE) * (share / total) + EXPLORATION_SHARE / peers.length);
}

/**
 * Ranks the replicas that may serve a read: `healthy` before `degraded`
 * (and, with a token, those known to have replayed it before those that
 * must be asked), then lowest `priority`, then lowest load cost. Priority is
 * the failover order of reads — who is tried next when a read fails — not a
 * tier: the first is drawn among all replicas of the head's tier with
 * probability ∝ weight / cost², and a small share explores evenly. Pure
 * apart from `random`.
 */
export function rankReplicas(
  nodes: readonly NodeState[],
  stats: ReadonlyMap<string, NodeStats>,
  constraints: ReadConstraints,
  now: number,
  random: () => number = Math.random,
): Ranking {
  const candidates = nodes.filter((n) => usable(n, stats.get(n.id), now));
  if (candidates.length === 0) return { replicas: [], none: 'primary:no-replica' };
  const fresh = candidates.filter((n) => lagOk(n, constraints.maxLagMs, now));
  if (fresh.length === 0) return { replicas: [], none: 'primary:lag' };

  const ranked: RankedReplica[] = fresh.map((node) => {
    let lsn: RankedReplica['lsn'] = 'none';
    if (constraints.minLsn !== undefined) {
      const known = [node.replayLsn, stats.get(node.id)?.observedReplayLsn ?? null].some((l) => l !== null && compareLsn(l, constraints.minLsn!) >= 0);
      lsn = known ? 'known' : 'check';
    }
    return { node, lsn, cost: loadCost(node, stats.get(node.id), now) };
  });

  const tier = (r: RankedReplica) => (r.lsn === 'check' ? 100 : 0) + STATUS_ORDER[r.node.status];
  ranked.sort((a, b) => tier(a) - tier(b) || a.node.priority - b.node.priority || a.cost - b.cost);

  // Among the head's tier, whatever their priority, pick at random with a
  // probability proportional to weight / cost²: near-equal replicas share the
  // reads even when latency estimates are noisy, a replica several times
  // slower gets a small share, and a few reads explore so every estimate
  // stays fresh.
  const head = ranked[0]!;
  const peers = ranked.filter((r) => tier(r) === tier(head));
  if (peers.length > 1) {
    let pick = random();
    const index = peerShares(peers).findIndex((share) => {
      pick -= share;
      return pick <= 0;
    });
    const chosen = peers[index === -1 ? 0 : index]!;
    ranked.splice(ranked.indexOf(chosen), 1);
    ranked.unshift(chosen);
  }
  return { replicas: ranked, none: null };
}

/** Default of how often {@link ReplicaSelector} re-ranks from the node stats (latency, errors). */
export const RERANK_INTERVAL_MS = 100;

interface Candidate {
  node: NodeState;
  stats: NodeStats;
  weight: number;
}

/**
 * The per-read replica choice without a per-read ranking: it ranks when the
 * topology changes, when told to ({@link invalidate}, after a ban), and
 * every {@link RERANK_INTERVAL_MS} for the latency and error figures; a read
 * then picks in O(1) with no allocation. The pick draws twice from an alias
 * table of the head tier's shares (the same shares as {@link rankReplicas}:
 * weight / cost², plus exploration) and keeps the draw with fewer reads in
 * flight per unit of weight — the load of this very moment.
 *
 * Reads that carry a token, and reads no head replica can serve, take
 * {@link rankReplicas} instead.
 */
export class ReplicaSelector {
  readonly #statsOf: (id: string) => NodeStats;
  readonly #defaultMaxLagMs: number;
  readonly #refreshMs: number;
  readonly #random: () => number;
  #nodes: readonly NodeState[] | null = null;
  #due = 0;
  /** Usable replicas, best first (status, priority, cost). */
  #all: Candidate[] = [];
  /** The head tier within the default lag bound, and its alias table. */
  #head: Candidate[] = [];
  #prob = new Float64Array(0);
  #alias = new Int32Array(0);

  constructor(statsOf: (id: string) => NodeStats, defaultMaxLagMs: number, options: { refreshMs?: number; random?: () => number } = {}) {
    this.#statsOf = statsOf;
    this.#defaultMaxLagMs = defaultMaxLagMs;
    this.#refreshMs = options.refreshMs ?? RERANK_INTERVAL_MS;
    this.#random = options.random ?? Math.random;
  }

  /** Re-rank before the next pick (the topology changed, a node was banned). */
  invalidate(): void {
    this.#due = 0;
  }

  /**
   * The replica a read without a token goes to, or null when none is
   * usable within `maxLagMs` (then {@link rankReplicas} says why).
   */
  pick(nodes: readonly NodeState[], maxLagMs: number, now: number): NodeState | null {
    if (nodes !== this.#nodes || now >= this.#due) this.#rank(nodes, now);
    const head = this.#head;
    if (head.length > 0) {
      let chosen = this.#draw();
      if (head.length > 1) {
        const other = this.#draw();
        if (other.stats.inFlight / other.weight < chosen.stats.inFlight / chosen.weight) chosen = other;
      }
      if (now >= chosen.stats.bannedUntil && lagOk(chosen.node, maxLagMs, now)) return chosen.node;
    }
    // A per-call lag bound the head misses, or a ban since the last ranking: the first that qualifies, in rank order.
    for (const c of this.#all) if (now >= c.stats.bannedUntil && lagOk(c.node, maxLagMs, now)) return c.node;
    return null;
  }

  #draw(): Candidate {
    const u = this.#random() * this.#head.length;
    const i = Math.min(Math.floor(u), this.#head.length - 1);
    return this.#head[u - i < this.#prob[i]! ? i : this.#alias[i]!]!;
  }

  #rank(nodes: readonly NodeState[], now: number): void {
    this.#nodes = nodes;
    this.#due = now + this.#refreshMs;
    const ranked: (Candidate & { cost: number })[] = [];
    for (const node of nodes) {
      if (node.role !== 'replica') continue;
      const stats = this.#statsOf(node.id);
      if (!usable(node, stats, now)) continue;
      ranked.push({ node, stats, weight: Math.max(node.weight, 0.0001), cost: loadCost(node, stats, now) });
    }
    ranked.sort((a, b) => STATUS_ORDER[a.node.status] - STATUS_ORDER[b.node.status] || a.node.priority - b.node.priority || a.cost - b.cost);
    this.#all = ranked;
    const fresh = ranked.filter((c) => lagOk(c.node, this.#defaultMaxLagMs, now));
    const best = fresh[0] ? STATUS_ORDER[fresh[0].node.status] : 0;
    const head = fresh.filter((c) => STATUS_ORDER[c.node.status] === best);
    this.#head = head;
    // Vose's alias method: one uniform draw picks by the shares in O(1).
    const n = head.length;
    const prob = new Float64Array(n);
    const alias = new Int32Array(n);
    const scaled = peerShares(head).map((share) => share * n);
    const small: number[] = [];
    const large: number[] = [];
    scaled.forEach((p, i) => {
      (p < 1 ? small : large).push(i);
    });
    while (small.length > 0 && large.length > 0) {
      const s = small.pop()!;
      const l = large.at(-1)!;
      prob[s] = scaled[s]!;
      alias[s] = l;
      scaled[l] = scaled[l]! + scaled[s]! - 1;
      if (scaled[l]! < 1) small.push(large.pop()!);
    }
    for (const i of [...small, ...large]) prob[i] = 1;
    this.#prob = prob;
    this.#alias = alias;
  }
}
