import type { SlotInfo } from '@pgreplica/probe';

/** When an inactive slot may be dropped. */
export interface SlotPolicy {
  maxRetainedBytes: number;
  inactiveGraceMs: number;
}

/**
 * Tracks how long each slot has been inactive (as seen by its caller, with
 * the caller's clock) and says when one should be cleaned up: inactive,
 * retaining more than `maxRetainedBytes`, for longer than `inactiveGraceMs`.
 * A slot stays due while that holds (the queue deduplicates pending jobs),
 * so a cleanup that kept it is triggered again later.
 */
export class SlotWatch {
  readonly #inactiveSince = new Map<string, number>();

  /** Slots to enqueue a cleanup for now. */
  evaluate(slots: readonly SlotInfo[], policy: SlotPolicy, nowMs: number): SlotInfo[] {
    const due: SlotInfo[] = [];
    const present = new Set<string>();
    for (const slot of slots) {
      present.add(slot.slotName);
      if (slot.active) {
        this.#inactiveSince.delete(slot.slotName);
        continue;
      }
      const since = this.#inactiveSince.get(slot.slotName) ?? nowMs;
      this.#inactiveSince.set(slot.slotName, since);
      if ((slot.retainedBytes ?? 0) > policy.maxRetainedBytes && nowMs - since >= policy.inactiveGraceMs) due.push(slot);
    }
    for (const name of [...this.#inactiveSince.keys()]) if (!present.has(name)) this.#inactiveSince.delete(name);
    return due;
  }

  /** Since when a slot has been inactive, as seen by this watch (ms). */
  inactiveSince(slotName: string): number | null {
    return this.#inactiveSince.get(slotName) ?? null;
  }

  /** How long a slot has been inactive, as seen by this watch. */
  inactiveForMs(slotName: string, nowMs: number): number | null {
    const since = this.#inactiveSince.get(slotName);
    return since === undefined ? null : nowMs - since;
  }
}

/** One slot on the primary as the slot-cleanup job reads it. */
export interface SlotRow {
  slotName: string;
  active: boolean;
  retainedBytes: number | null;
  /** How long it has been inactive, by the best evidence at hand; null when unknown. */
  inactiveForMs: number | null;
}

/** Which slots to drop and why the others stay. */
export interface SlotDropPlan {
  drop: string[];
  kept: { slotName: string; why: string }[];
}

/**
 * Decides which inactive physical slots to drop: never an active slot, never
 * one at or under the limit, never one inactive for less than
 * `inactiveGraceMs` (or for an unknown time: its replica may be rebooting),
 * never the slot of a configured replica that is reachable (it is coming
 * back). With `onlySlot`, that slot alone. Pure.
 */
export function planSlotDrops(args: {
  slots: readonly SlotRow[];
  policy: SlotPolicy;
  /** Slot names of configured replicas that answered a probe just now. */
  reachableReplicaSlots: ReadonlySet<string>;
  onlySlot?: string | undefined;
}): SlotDropPlan {
  const { slots, policy, reachableReplicaSlots, onlySlot } = args;
  const kept: SlotDropPlan['kept'] = [];
  const drop: string[] = [];
  for (const slot of slots) {
    if (onlySlot !== undefined && slot.slotName !== onlySlot) continue;
    const keep = (why: string) => kept.push({ slotName: slot.slotName, why });
    if (slot.active) keep('active');
    else if ((slot.retainedBytes ?? 0) <= policy.maxRetainedBytes) keep(`retains ${slot.retainedBytes ?? 0} bytes, limit ${policy.maxRetainedBytes}`);
    else if (slot.inactiveForMs === null || slot.inactiveForMs < policy.inactiveGraceMs) {
      keep(`inactive for ${slot.inactiveForMs ?? 'an unknown time'}${slot.inactiveForMs === null ? '' : ' ms'}, inside its grace period of ${policy.inactiveGraceMs} ms`);
    } else if (reachableReplicaSlots.has(slot.slotName)) keep(`its replica is reachable: it is coming back`);
    else drop.push(slot.slotName);
  }
  if (onlySlot !== undefined && !slots.some((s) => s.slotName === onlySlot)) kept.push({ slotName: onlySlot, why: 'no longer exists' });
  return { drop, kept };
}
