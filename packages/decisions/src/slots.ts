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
 * Each inactivity episode yields one trigger.
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
      if (!this.#triggered.has(slot.slotName) && (slot.retainedBytes ?? 0) > policy.maxRetainedBytes && nowMs - since >= policy.inactiveGraceMs) {
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
}

/** Which slots to drop and why the others stay. */
export interface SlotDropPlan {
  drop: string[];
  kept: { slotName: string; why: string }[];
}

/**
 * Decides which inactive physical slots to drop: never an active slot, never
 * one at or under the limit, never the slot of a configured replica that is
 * reachable (it is coming back). With `onlySlot`, that slot alone. Pure.
 */
export function planSlotDrops(args: {
  slots: readonly SlotRow[];
  policy: Pick<SlotPolicy, 'maxRetainedBytes'>;
  /** Slot names of configured replicas that answered a probe just now. */
  reachableReplicaSlots: ReadonlySet<string>;
  onlySlot?: string | undefined;
}): SlotDropPlan {
  const { slots, policy, reachableReplicaSlots, onlySlot } = args;
  const kept: SlotDropPlan['kept'] = [];
  const drop: string[] = [];
  for (const slot of slots) {
    if (onlySlot !== undefined && slot.slotName !== onlySlot) continue;
    if (slot.active) kept.push({ slotName: slot.slotName, why: 'active' });
    else if ((slot.retainedBytes ?? 0) <= policy.maxRetainedBytes) {
      kept.push({ slotName: slot.slotName, why: `retains ${slot.retainedBytes ?? 0} bytes, limit ${policy.maxRetainedBytes}` });
    } else if (reachableReplicaSlots.has(slot.slotName)) {
      kept.push({ slotName: slot.slotName, why: `its replica ${slot.slotName} is reachable: inside its grace period` });
    } else drop.push(slot.slotName);
  }
  if (onlySlot !== undefined && !slots.some((s) => s.slotName === onlySlot)) kept.push({ slotName: onlySlot, why: 'no longer exists' });
  return { drop, kept };
}
