import type { NodeSample, SlotInfo } from '@pgreplica/probe';
import type { NodeState } from '@pgreplica/protocol';
import { describe, expect, it } from 'vitest';
import { decideFailover, SlotWatch } from './triggers.js';

const t0 = Date.parse('2026-01-01T00:00:00Z');

function slot(name: string, active: boolean, retainedBytes: number): SlotInfo {
  return { slotName: name, slotType: 'physical', active, activePid: active ? 1 : null, walStatus: 'reserved', safeWalSizeBytes: null, retainedBytes };
}

describe('SlotWatch', () => {
  const policy = { maxRetainedBytes: 1_000, inactiveGraceMs: 10_000 };

  it('triggers once for a slot inactive past the grace period and over the limit', () => {
    const watch = new SlotWatch();
    const slots = [slot('gone', false, 5_000), slot('live', true, 9_999_999), slot('small', false, 10)];
    expect(watch.evaluate(slots, policy, t0)).toEqual([]);
    expect(watch.evaluate(slots, policy, t0 + 9_999)).toEqual([]);
    expect(watch.evaluate(slots, policy, t0 + 10_000).map((s) => s.slotName)).toEqual(['gone']);
    expect(watch.evaluate(slots, policy, t0 + 20_000)).toEqual([]);
  });

  it('starts over when the slot becomes active again', () => {
    const watch = new SlotWatch();
    watch.evaluate([slot('s', false, 5_000)], policy, t0);
    watch.evaluate([slot('s', true, 5_000)], policy, t0 + 5_000);
    expect(watch.evaluate([slot('s', false, 5_000)], policy, t0 + 12_000)).toEqual([]);
    expect(watch.evaluate([slot('s', false, 5_000)], policy, t0 + 22_000)).toHaveLength(1);
  });
});

describe('decideFailover', () => {
  const policy = { policy: 'auto' as const, failoverAfterMs: 5_000, witnessFreshMs: 20_000 };
  const primary = (status: NodeState['status'], reason: NodeState['reason'], sinceMs: number): NodeState => ({
    id: 'p1', host: 'db1', port: 5432, role: 'primary', status, reason, priority: 0, weight: 1, tags: [], lagBytes: 0, lagMs: 0,
    replayLsn: null, receiveLsn: null, timeline: 1, lastCheckAt: null, since: new Date(sinceMs).toISOString(), consecutiveFailures: 3,
  });
  const replica = (status: string, ageMs: number, sender = 'db1:5432'): NodeSample =>
    ({
      walReceiver: {
        status,
        receivedTimeline: 1,
        lastMsgReceiptAt: new Date(t0 + 10_000 - ageMs),
        senderHost: sender.split(':')[0]!,
        senderPort: Number(sender.split(':')[1]),
        slotName: 'r',
      },
    }) as NodeSample;
  const others = new Set(['db2:5432', 'db3:5432']);
  const decide = (p: NodeState, witnesses: { nodeId: string; reachable: boolean; sample: NodeSample | null }[], extra: Partial<Parameters<typeof decideFailover>[0]> = {}) =>
    decideFailover({ primary: p, witnesses, otherNodeAddresses: others, policy, paused: false, nowMs: t0 + 10_000, ...extra });

  it('does nothing while the primary is healthy or not down long enough', () => {
    expect(decide(primary('healthy', 'ok', t0), [])).toEqual({ action: 'none' });
    expect(decide(primary('unhealthy', 'unreachable', t0 + 6_000), [])).toEqual({ action: 'none' });
    expect(decide(primary('unhealthy', 'second-primary', t0), [])).toEqual({ action: 'none' });
  });

  it('promotes when the primary is down and no replica streams from it', () => {
    const d = decide(primary('unhealthy', 'unreachable', t0), [
      { nodeId: 'r1', reachable: true, sample: replica('waiting', 15_000) },
      { nodeId: 'r2', reachable: false, sample: null },
    ]);
    expect(d.action).toBe('promote');
  });

  it('suppresses when a replica still streams from the primary (the monitor is the one cut off)', () => {
    const d = decide(primary('unhealthy', 'timeout', t0), [{ nodeId: 'r1', reachable: true, sample: replica('streaming', 1_000) }]);
    expect(d).toMatchObject({ action: 'suppress', reason: 'replica-still-streaming' });
  });

  it('does not count a stale receiver or one cascading from another replica as a witness', () => {
    expect(decide(primary('unhealthy', 'timeout', t0), [{ nodeId: 'r1', reachable: true, sample: replica('streaming', 25_000) }]).action).toBe('promote');
    expect(decide(primary('unhealthy', 'timeout', t0), [{ nodeId: 'r1', reachable: true, sample: replica('streaming', 100, 'db2:5432') }]).action).toBe('promote');
  });

  it('suppresses under a manual policy or a pause', () => {
    expect(decide(primary('unhealthy', 'unreachable', t0), [], { policy: { ...policy, policy: 'manual' } })).toMatchObject({ reason: 'policy-manual' });
    expect(decide(primary('unhealthy', 'unreachable', t0), [], { paused: true })).toMatchObject({ reason: 'paused' });
  });
});
