import type { SlotInfo } from '@pgreplica/probe';
import { describe, expect, it } from 'vitest';
import { planSlotDrops, SlotWatch } from './slots.js';

const t0 = Date.parse('2026-01-01T00:00:00Z');

function slot(name: string, active: boolean, retainedBytes: number): SlotInfo {
  return { slotName: name, slotType: 'physical', active, activePid: active ? 1 : null, walStatus: 'reserved', safeWalSizeBytes: null, retainedBytes };
}

describe('SlotWatch', () => {
  const policy = { maxRetainedBytes: 1_000, inactiveGraceMs: 10_000 };

  it('says a slot inactive past the grace period and over the limit is due, and stays due while that holds', () => {
    const watch = new SlotWatch();
    const slots = [slot('gone', false, 5_000), slot('live', true, 9_999_999), slot('small', false, 10)];
    expect(watch.evaluate(slots, policy, t0)).toEqual([]);
    expect(watch.evaluate(slots, policy, t0 + 9_999)).toEqual([]);
    expect(watch.evaluate(slots, policy, t0 + 10_000).map((s) => s.slotName)).toEqual(['gone']);
    expect(watch.evaluate(slots, policy, t0 + 20_000).map((s) => s.slotName)).toEqual(['gone']);
    expect(watch.inactiveSince('gone')).toBe(t0);
  });

  it('starts over when the slot becomes active again', () => {
    const watch = new SlotWatch();
    watch.evaluate([slot('s', false, 5_000)], policy, t0);
    watch.evaluate([slot('s', true, 5_000)], policy, t0 + 5_000);
    expect(watch.evaluate([slot('s', false, 5_000)], policy, t0 + 12_000)).toEqual([]);
    expect(watch.evaluate([slot('s', false, 5_000)], policy, t0 + 22_000)).toHaveLength(1);
  });
});

describe('planSlotDrops', () => {
  const policy = { maxRetainedBytes: 1_000, inactiveGraceMs: 60_000 };
  const rows = [
    { slotName: 'live', active: true, retainedBytes: 9e9, inactiveForMs: null },
    { slotName: 'small', active: false, retainedBytes: 10, inactiveForMs: 600_000 },
    { slotName: 'r1', active: false, retainedBytes: 9e9, inactiveForMs: 600_000 },
    { slotName: 'gone', active: false, retainedBytes: 9e9, inactiveForMs: 600_000 },
    { slotName: 'rebooting', active: false, retainedBytes: 9e9, inactiveForMs: 1_000 },
    { slotName: 'unknown', active: false, retainedBytes: 9e9, inactiveForMs: null },
  ];

  it('drops only inactive slots over the limit, past their grace period, whose replica is not reachable', () => {
    const plan = planSlotDrops({ slots: rows, policy, reachableReplicaSlots: new Set(['r1']) });
    expect(plan.drop).toEqual(['gone']);
    expect(plan.kept.map((k) => k.slotName)).toEqual(['live', 'small', 'r1', 'rebooting', 'unknown']);
    expect(plan.kept.find((k) => k.slotName === 'rebooting')?.why).toMatch(/inside its grace period/);
  });

  it('looks at one slot when asked, and says when it no longer exists', () => {
    expect(planSlotDrops({ slots: rows, policy, reachableReplicaSlots: new Set(), onlySlot: 'r1' }).drop).toEqual(['r1']);
    expect(planSlotDrops({ slots: rows, policy, reachableReplicaSlots: new Set(), onlySlot: 'zz' }).kept).toEqual([{ slotName: 'zz', why: 'no longer exists' }]);
  });
});
