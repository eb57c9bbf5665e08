import type { NodeSample, SlotInfo } from '@pgreplica/probe';
import type { NodeState } from '@pgreplica/protocol';

/** When an inactive slot becomes a cleanup candidate. */
export interface SlotPolicy {
  maxRetainedBytes: number;
  inactiveGraceMs: number;
}

/**
 * Tracks how long each slot has been inactive and says when one should be
 * cleaned up: inactive, retaining more than `maxRetainedBytes`, for longer
 * than `inactiveGraceMs`. Each inactivity episode yields one trigger.
 */
export class SlotWatch {
  readonly #inactiveSince = new Map<string, number>();
  readonly #triggered = new Set<string>();

  /** Slots to enqueue a cleanup for now. */
  evaluate(slots: readonly SlotInfo[], policy: SlotPolicy, nowMs: number): SlotInfo[] {
    const due: SlotInfo[] = [];
    const present = new Set<string>();
    for (const slot of slots) {
      present.add(slot.slotName);
      if (slot.active) {
        this.#inactiveSince.delete(slot.slotName);
        this.#triggered.delete(slot.slotName);
        continue;
      }
      const since = this.#inactiveSince.get(slot.slotName) ?? nowMs;
      this.#inactiveSince.set(slot.slotName, since);
      if (
        !this.#triggered.has(slot.slotName) &&
        (slot.retainedBytes ?? 0) > policy.maxRetainedBytes &&
        nowMs - since >= policy.inactiveGraceMs
      ) {
        this.#triggered.add(slot.slotName);
        due.push(slot);
      }
    }
    for (const name of [...this.#inactiveSince.keys()]) {
      if (!present.has(name)) {
        this.#inactiveSince.delete(name);
        this.#triggered.delete(name);
      }
    }
    return due;
  }

  /** How long a slot has been inactive, as seen by this monitor. */
  inactiveForMs(slotName: string, nowMs: number): number | null {
    const since = this.#inactiveSince.get(slotName);
    return since === undefined ? null : nowMs - since;
  }
}

/** Failover settings the decision needs. */
export interface FailoverPolicy {
  policy: 'auto' | 'manual';
  failoverAfterMs: number;
  witnessFreshMs: number;
}

/** A replica as a witness of the primary's liveness. */
export interface Witness {
  nodeId: string;
  reachable: boolean;
  sample: NodeSample | null;
}

/** What to do about the primary this round. */
export type FailoverDecision =
  | { action: 'none' }
  | { action: 'promote'; inputs: Record<string, unknown> }
  | {
      action: 'suppress';
      reason: 'replica-still-streaming' | 'policy-manual' | 'paused';
      detail: string;
      inputs: Record<string, unknown>;
    };

const DEAD_REASONS = new Set(['unreachable', 'timeout']);

/**
 * Decides whether the primary's failure calls for a promotion. The primary
 * must have been unhealthy (unreachable or timing out) for `failoverAfterMs`;
 * then any reachable replica that still streams from it — its WAL receiver
 * is streaming, not from another replica, and heard from its sender within
 * `witnessFreshMs` — proves the primary alive and only the monitor cut off:
 * no failover. Pure: the caller supplies the clock.
 */
export function decideFailover(args: {
  primary: NodeState | undefined;
  witnesses: readonly Witness[];
  /** host:port of the other known nodes: a replica streaming from one of them cascades, and witnesses nothing about the primary. */
  otherNodeAddresses: ReadonlySet<string>;
  policy: FailoverPolicy;
  paused: boolean;
  nowMs: number;
}): FailoverDecision {
  const { primary, witnesses, otherNodeAddresses, policy, paused, nowMs } = args;
  if (primary?.status !== 'unhealthy' || !DEAD_REASONS.has(primary.reason)) return { action: 'none' };
  const downForMs = nowMs - Date.parse(primary.since);
  if (downForMs < policy.failoverAfterMs) return { action: 'none' };

  const observations = witnesses.map((w) => {
    const receiver = w.sample?.walReceiver ?? null;
    const ageMs = receiver?.lastMsgReceiptAt ? nowMs - receiver.lastMsgReceiptAt.getTime() : null;
    // The sender is the primary unless it is another known node (cascading). Not
    // a match on the primary's address: replicas may reach it by another name or
    // through a proxy than the monitor does.
    const fromPrimary = receiver !== null && !otherNodeAddresses.has(`${receiver.senderHost}:${receiver.senderPort}`);
    const streaming = w.reachable && receiver?.status === 'streaming' && fromPrimary && ageMs !== null && ageMs <= policy.witnessFreshMs;
    return { nodeId: w.nodeId, reachable: w.reachable, receiver: receiver?.status ?? null, lastMessageAgeMs: ageMs, streaming };
  });
  const inputs = { primaryId: primary.id, primaryReason: primary.reason, downForMs, witnesses: observations };
  const alive = observations.filter((o) => o.streaming);
  if (alive.length > 0) {
    return {
      action: 'suppress',
      reason: 'replica-still-streaming',
      detail: `${alive.map((o) => o.nodeId).join(', ')} still stream(s) from ${primary.id}: the primary is alive, only unreachable from the monitor`,
      inputs,
    };
  }
  if (paused) return { action: 'suppress', reason: 'paused', detail: 'automatic remediation is paused (pgreplica resume)', inputs };
  if (policy.policy === 'manual') {
    return { action: 'suppress', reason: 'policy-manual', detail: 'failover.policy is manual: promote with pgreplica promote', inputs };
  }
  return { action: 'promote', inputs };
}
