import type { NodeState } from '@pgreplica/protocol';
import { describe, expect, it } from 'vitest';
import { decideFailover, decidePromotion } from './failover.js';
import { receiverSample } from './test-support.js';
import { observeWitnesses, type WitnessInput } from './witnesses.js';

const t0 = Date.parse('2026-01-01T00:00:00Z');
const now = t0 + 10_000;
const policy = { policy: 'auto' as const, failoverAfterMs: 5_000 };
const rules = { otherNodeAddresses: new Set(['db2:5432', 'db3:5432']), witnessFreshMs: 20_000, silenceMarginMs: 1_000, nowMs: now };
const primary = (status: NodeState['status'], reason: NodeState['reason'], sinceMs: number): NodeState => ({
  id: 'p1', host: 'db1', port: 5432, role: 'primary', status, reason, priority: 0, weight: 1, tags: [], lagBytes: 0, lagMs: 0,
  replayLsn: null, receiveLsn: null, timeline: 1, lastCheckAt: null, since: new Date(sinceMs).toISOString(), consecutiveFailures: 3,
});
const decide = (p: NodeState, witnesses: WitnessInput[], extra: Partial<Parameters<typeof decideFailover>[0]> = {}) =>
  decideFailover({ primary: p, witnesses: observeWitnesses(witnesses, rules), policy, paused: false, nowMs: now, ...extra });

describe('decideFailover (monitor)', () => {
  it('does nothing while the primary is healthy, not down long enough, or writable elsewhere', () => {
    expect(decide(primary('healthy', 'ok', t0), [])).toEqual({ action: 'none' });
    expect(decide(primary('unhealthy', 'unreachable', t0 + 6_000), [])).toEqual({ action: 'none' });
    expect(decide(primary('unhealthy', 'second-primary', t0), [])).toEqual({ action: 'none' });
  });

  it('promotes when the primary is down and no replica streams from it', () => {
    const d = decide(primary('unhealthy', 'unreachable', t0), [
      { nodeId: 'r1', reachable: true, sample: receiverSample('waiting', 15_000, now) },
      { nodeId: 'r2', reachable: false, sample: null },
    ]);
    expect(d.action).toBe('promote');
  });

  it('suppresses when a replica still streams from the primary (the monitor is the one cut off)', () => {
    const d = decide(primary('unhealthy', 'timeout', t0), [{ nodeId: 'r1', reachable: true, sample: receiverSample('streaming', 1_000, now) }]);
    expect(d).toMatchObject({ action: 'suppress', reason: 'replica-still-streaming' });
  });

  it('suppresses under a manual policy or a pause', () => {
    expect(decide(primary('unhealthy', 'unreachable', t0), [], { policy: { ...policy, policy: 'manual' } })).toMatchObject({ reason: 'policy-manual' });
    expect(decide(primary('unhealthy', 'unreachable', t0), [], { paused: true })).toMatchObject({ reason: 'paused' });
  });
});

describe('decidePromotion (worker re-check)', () => {
  it('refuses while the worker reaches a writable primary, or a witness streams from it', () => {
    expect(decidePromotion({ primaryWritable: true, witnesses: [] })).toMatchObject({ proceed: false, reason: expect.stringMatching(/^primary-reachable/) });
    const streaming = observeWitnesses([{ nodeId: 'r1', reachable: true, sample: receiverSample('streaming', 10, now) }], rules);
    expect(decidePromotion({ primaryWritable: false, witnesses: streaming })).toMatchObject({ proceed: false, reason: expect.stringMatching(/^replica-still-streaming: r1/) });
  });

  it('proceeds when the primary is gone for the worker too and no witness streams from it', () => {
    const waiting = observeWitnesses([{ nodeId: 'r1', reachable: true, sample: receiverSample('waiting', 10, now) }], rules);
    expect(decidePromotion({ primaryWritable: false, witnesses: waiting })).toEqual({ proceed: true });
  });
});
