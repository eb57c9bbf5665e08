import type { NodeReason, NodeStatus } from '@pgreplica/protocol';

/** Limits a node is judged against. */
export interface HealthThresholds {
  /** Lag in time at or above which a replica is `degraded`. */
  degradedLagMs: number;
  /** Lag in time at or above which a replica is `unhealthy`. */
  unhealthyLagMs: number;
  degradedLagBytes: number;
  unhealthyLagBytes: number;
  /** Consecutive better verdicts needed to improve the status. */
  rise: number;
  /** Consecutive worse verdicts needed to worsen the status (probe failures included). */
  fall: number;
  /** How long a replica's WAL receiver may be not streaming before the replica is `unhealthy`. */
  receiverDownAfterMs: number;
  /** How long replay may stand still while received WAL waits before the replica is `degraded` (`replay-stalled`). */
  replayStalledAfterMs: number;
}

/** Defaults of {@link HealthThresholds}. */
export const DEFAULT_HEALTH_THRESHOLDS: HealthThresholds = {
  degradedLagMs: 5_000,
  unhealthyLagMs: 30_000,
  degradedLagBytes: 16 * 1024 * 1024,
  unhealthyLagBytes: 256 * 1024 * 1024,
  rise: 2,
  fall: 3,
  receiverDownAfterMs: 10_000,
  replayStalledAfterMs: 5_000,
};

/** The verdict of one probe round on one node, before hysteresis. */
export interface Verdict {
  status: Exclude<NodeStatus, 'unknown'>;
  reason: NodeReason;
  detail?: string | undefined;
  /**
   * Skip hysteresis: for facts that one sample establishes (a second primary,
   * a foreign system identifier, replay paused) or that already took two
   * rounds to see (replay stalled).
   */
  immediate: boolean;
}

const SEVERITY: Record<NodeStatus, number> = { unknown: -1, healthy: 0, degraded: 1, unhealthy: 2 };

/** The worse of two verdicts (the first on a tie). */
export function worse(a: Verdict, b: Verdict): Verdict {
  return SEVERITY[b.status] > SEVERITY[a.status] ? b : a;
}

/** A node's judged health across rounds. */
export interface TrackedHealth {
  status: NodeStatus;
  reason: NodeReason;
  detail?: string | undefined;
  /** When `status` last changed. */
  since: Date;
  /** Verdicts in a row that differ in the same direction from `status`. */
  streak: { direction: 'worse' | 'better'; count: number; mildest: Verdict; harshest: Verdict } | null;
}

/** Starting point of a node never judged. */
export function initialHealth(now: Date): TrackedHealth {
  return { status: 'unknown', reason: 'not-probed', since: now, streak: null };
}

/**
 * Applies one round's verdict with rise/fall hysteresis, like HAProxy's
 * checks: one slow probe does not flap a node. Worsening needs `fall` worse
 * verdicts in a row and lands on the mildest of them; improving needs `rise`
 * better ones and lands on the harshest of them. An `immediate` verdict and a
 * node's first verdict apply at once. A new reason at the same status applies
 * at once.
 */
export function applyVerdict(prev: TrackedHealth, verdict: Verdict, thresholds: Pick<HealthThresholds, 'rise' | 'fall'>, now: Date): TrackedHealth {
  const adopt = (v: Verdict): TrackedHealth => ({
    status: v.status,
    reason: v.reason,
    detail: v.detail,
    since: v.status === prev.status ? prev.since : now,
    streak: null,
  });
  if (prev.status === 'unknown' || verdict.immediate) return adopt(verdict);
  const delta = SEVERITY[verdict.status] - SEVERITY[prev.status];
  if (delta === 0) return adopt(verdict);
  const direction: 'worse' | 'better' = delta > 0 ? 'worse' : 'better';
  const streak =
    prev.streak?.direction === direction
      ? {
          direction,
          count: prev.streak.count + 1,
          mildest: SEVERITY[verdict.status] < SEVERITY[prev.streak.mildest.status] ? verdict : prev.streak.mildest,
          harshest: SEVERITY[verdict.status] > SEVERITY[prev.streak.harshest.status] ? verdict : prev.streak.harshest,
        }
      : { direction, count: 1, mildest: verdict, harshest: verdict };
  if (direction === 'worse' && streak.count >= thresholds.fall) return adopt(streak.mildest);
  if (direction === 'better' && streak.count >= thresholds.rise) return adopt(streak.harshest);
  return { ...prev, streak };
}

/** Verdict from lag alone. */
export function lagVerdict(lagMs: number | null, lagBytes: number | null, t: HealthThresholds): Verdict {
  const ms = lagMs ?? 0;
  const bytes = lagBytes ?? 0;
  const detail = `lag ${lagMs === null ? '?' : Math.round(ms)} ms, ${lagBytes === null ? '?' : bytes} bytes`;
  if (ms >= t.unhealthyLagMs || bytes >= t.unhealthyLagBytes) return { status: 'unhealthy', reason: 'lagging', detail, immediate: false };
  if (ms >= t.degradedLagMs || bytes >= t.degradedLagBytes) return { status: 'degraded', reason: 'lagging', detail, immediate: false };
  return { status: 'healthy', reason: 'ok', immediate: false };
}
