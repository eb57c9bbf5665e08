import type { NodeState } from '@pgreplica/protocol';
import { livingWitnesses, type WitnessObservation } from './witnesses.js';

/** Failover settings the monitor's decision needs. */
export interface FailoverPolicy {
  policy: 'auto' | 'manual';
  failoverAfterMs: number;
}

/** What the monitor should do about the primary this round. */
export type FailoverDecision =
  | { action: 'none' }
  | { action: 'promote'; inputs: Record<string, unknown> }
  | {
      action: 'suppress';
      reason: 'replica-still-streaming' | 'policy-manual' | 'paused';
      detail: string;
      inputs: Record<string, unknown>;
    };

const DEAD_REASONS = new Set<NodeState['reason']>(['unreachable', 'timeout']);

/**
 * Decides whether the primary's failure calls for a promotion job. The
 * primary must have been unhealthy (unreachable or timing out) for
 * `failoverAfterMs`; then any witness that still streams from it proves it
 * alive and only the monitor cut off: no failover. A pause or a manual
 * policy suppresses what would otherwise be a promotion. Pure.
 */
export function decideFailover(args: {
  primary: NodeState | undefined;
  witnesses: readonly WitnessObservation[];
  policy: FailoverPolicy;
  paused: boolean;
  nowMs: number;
}): FailoverDecision {
  const { primary, witnesses, policy, paused, nowMs } = args;
  if (primary?.status !== 'unhealthy' || !DEAD_REASONS.has(primary.reason)) return { action: 'none' };
  const downForMs = nowMs - Date.parse(primary.since);
  if (downForMs < policy.failoverAfterMs) return { action: 'none' };
  const inputs = { primaryId: primary.id, primaryReason: primary.reason, downForMs, witnesses };
  const alive = livingWitnesses(witnesses);
  if (alive.length > 0) {
    return {
      action: 'suppress',
      reason: 'replica-still-streaming',
      detail: `${alive.join(', ')} still stream(s) from ${primary.id}: the primary is alive, only unreachable from the monitor`,
      inputs,
    };
  }
  if (paused) return { action: 'suppress', reason: 'paused', detail: 'automatic remediation is paused (pgreplica resume)', inputs };
  if (policy.policy === 'manual') {
    return { action: 'suppress', reason: 'policy-manual', detail: 'failover.policy is manual: promote with pgreplica promote', inputs };
  }
  return { action: 'promote', inputs };
}

/** The worker's verdict at run time, on its own probes. */
export type PromotionVerdict = { proceed: true } | { proceed: false; reason: string };

/**
 * The worker's re-check before a failover: it runs only when the worker
 * cannot reach the primary as a primary either AND no reachable replica
 * still streams from it (the replicas are witnesses: an observer cut off
 * from a live primary must not cause a failover). Pure.
 */
export function decidePromotion(args: { primaryWritable: boolean; witnesses: readonly WitnessObservation[] }): PromotionVerdict {
  if (args.primaryWritable) return { proceed: false, reason: 'primary-reachable: the worker reaches the primary, which takes writes' };
  const alive = livingWitnesses(args.witnesses);
  if (alive.length > 0) return { proceed: false, reason: `replica-still-streaming: ${alive.join(', ')} still stream(s) from the primary` };
  return { proceed: true };
}
