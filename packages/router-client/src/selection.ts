import { compareLsn, type NodeState, type NodeStatus } from '@pgreplica/protocol';
import type { NodeStats } from './node-stats.js';

/** Why a call went where it went; a metric label and part of `explain()`. */
export type RouteReason =
  | 'replica:lag-ok'
  | 'replica:token-replayed'
  | 'replica:token-check'
  | 'primary:write'
  | 'primary:classified-write'
  | 'primary:explicit'
  | 'primary:no-replica'
  | 'primary:lag'
  | 'primary:token-not-replayed'
  | 'primary:bus-stale'
  | 'primary:fallback-budget'
  | 'primary:replica-failed'
  | 'primary:read-only-refusal'
  | 'primary:transaction';

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

/**
 * Ranks the replicas that may serve a read: `healthy` before `degraded`,
 * then lowest `priority`, then lowest load cost; the first is drawn among
 * the head's peers with probability ∝ weight / cost², and a small share
 * explores a random peer. Pure apart from `random`.
 */
export function rankReplicas(
  nodes: readonly NodeState[],
  stats: ReadonlyMap<string, NodeStats>,
  constraints: ReadConstraints,
  now: number,
  random: () => number = Math.random,
): Ranking {
  const replicas = nodes.filter((n) => n.role === 'replica');
  const usable = replicas.filter(
    (n) => (n.status === 'healthy' || n.status === 'degraded') && !n.tags.includes('noloadbalance') && !stats.get(n.id)?.isBanned(now),
  );
  if (usable.length === 0) return { replicas: [], none: 'primary:no-replica' };
  const fresh =
    constraints.maxLagMs === undefined ? usable : usable.filter((n) => n.lagMs !== null && n.lagMs <= constraints.maxLagMs!);
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

  // Among the head's peers (same tier and priority), pick at random with a
  // probability proportional to weight / cost²: near-equal replicas share the
  // reads even when latency estimates are noisy, a replica several times
  // slower gets a small share, and a few reads explore so every estimate
  // stays fresh.
  const head = ranked[0]!;
  const peers = ranked.filter((r) => tier(r) === tier(head) && r.node.priority === head.node.priority);
  if (peers.length > 1) {
    let chosen: RankedReplica;
    if (random() < EXPLORATION_SHARE) {
      chosen = peers[Math.floor(random() * peers.length)]!;
    } else {
      const shares = peers.map((r) => Math.max(r.node.weight, 0.0001) / r.cost ** 2);
      let pick = random() * shares.reduce((a, b) => a + b, 0);
      const index = shares.findIndex((share) => {
        pick -= share;
        return pick <= 0;
      });
      chosen = peers[index === -1 ? 0 : index]!;
    }
    ranked.splice(ranked.indexOf(chosen), 1);
    ranked.unshift(chosen);
  }
  return { replicas: ranked, none: null };
}
