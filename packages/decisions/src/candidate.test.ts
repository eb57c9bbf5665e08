import { describe, expect, it } from 'vitest';
import { chooseCandidate } from './candidate.js';
import type { WitnessObservation } from './witnesses.js';

const obs = (nodeId: string, receiveLsn: string | null, extra: Partial<WitnessObservation> = {}): WitnessObservation => ({
  nodeId, reachable: true, inRecovery: true, receiveLsn, replayLsn: receiveLsn, receiver: 'waiting', lastMessageAgeMs: 5_000, freshWithinMs: 20_000, streamingFromPrimary: false, ...extra,
});
const nodes = [
  { id: 'r1', priority: 1, tags: [] },
  { id: 'r2', priority: 2, tags: [] },
  { id: 'r3', priority: 0, tags: ['nofailover' as const] },
];

describe('chooseCandidate', () => {
  it('takes the most advanced received LSN, ties by priority', () => {
    expect(chooseCandidate({ observations: [obs('r1', '0/100'), obs('r2', '0/200')], nodes, maxLagOnFailoverBytes: 1_000, lastPrimaryLsn: null })).toMatchObject({ candidateId: 'r2', qualified: ['r2', 'r1'] });
    expect(chooseCandidate({ observations: [obs('r2', '0/200'), obs('r1', '0/200')], nodes, maxLagOnFailoverBytes: 1_000, lastPrimaryLsn: null })).toMatchObject({ candidateId: 'r1' });
  });

  it('never takes nofailover, unreachable or non-recovering nodes', () => {
    const choice = chooseCandidate({
      observations: [obs('r3', '0/900'), obs('r1', '0/100', { reachable: false }), obs('r2', '0/100', { inRecovery: false })],
      nodes, maxLagOnFailoverBytes: 1_000_000, lastPrimaryLsn: null,
    });
    expect(choice).toMatchObject({ candidateId: null, reason: expect.stringMatching(/^no-candidate/) });
  });

  it('refuses replicas further behind the primary\'s last position than allowed', () => {
    const choice = chooseCandidate({ observations: [obs('r1', '0/100')], nodes, maxLagOnFailoverBytes: 16, lastPrimaryLsn: '0/200' });
    expect(choice).toMatchObject({ candidateId: null, reference: '0/200' });
  });

  it('honours a requested candidate only when it qualifies', () => {
    const args = { observations: [obs('r1', '0/100'), obs('r2', '0/200')], nodes, maxLagOnFailoverBytes: 1_000, lastPrimaryLsn: null };
    expect(chooseCandidate({ ...args, requestedId: 'r1' })).toMatchObject({ candidateId: 'r1' });
    expect(chooseCandidate({ ...args, requestedId: 'r3' })).toMatchObject({ candidateId: null, reason: expect.stringMatching(/r3 does not qualify/) });
  });
});
