import { describe, expect, it } from 'vitest';
import { decideFence, decideRejoin } from './fence.js';

const record = { epoch: 3, primaryId: 'p2', systemIdentifier: '1', at: '2026-01-01T00:00:00.000Z', cause: 'failover' as const };
const base = { nodeId: 'p1', jobEpoch: 3, record, probe: { inRecovery: false, epoch: 2 }, candidateId: null };

describe('decideFence', () => {
  it('fences a writable node with an older epoch that is not the primary of the record', () => {
    expect(decideFence(base)).toEqual({ fence: true });
  });

  it('never fences the recorded primary, an unreachable node or a replica', () => {
    expect(decideFence({ ...base, nodeId: 'p2' })).toMatchObject({ fence: false });
    expect(decideFence({ ...base, probe: null })).toMatchObject({ fence: false, reason: 'not reachable' });
    expect(decideFence({ ...base, probe: { inRecovery: true, epoch: 3 } })).toMatchObject({ fence: false });
  });

  it('never fences the candidate of a promotion in progress, nor for another epoch than the job\'s', () => {
    expect(decideFence({ ...base, candidateId: 'p1' })).toMatchObject({ fence: false, reason: expect.stringMatching(/candidate/) });
    expect(decideFence({ ...base, jobEpoch: 2 })).toMatchObject({ fence: false, reason: expect.stringMatching(/epoch 2/) });
  });

  it('never fences a node whose own database records a newer epoch than the record (the record is behind)', () => {
    expect(decideFence({ ...base, probe: { inRecovery: false, epoch: 4 } })).toMatchObject({ fence: false });
  });
});

describe('decideRejoin', () => {
  it('rejoins a deposed node, never the primary, the candidate, or a node ahead of the record', () => {
    expect(decideRejoin({ nodeId: 'p1', record, probe: null, candidateId: null })).toEqual({ rejoin: true });
    expect(decideRejoin({ nodeId: 'p2', record, probe: null, candidateId: null })).toMatchObject({ rejoin: false });
    expect(decideRejoin({ nodeId: 'p1', record, probe: null, candidateId: 'p1' })).toMatchObject({ rejoin: false });
    expect(decideRejoin({ nodeId: 'p1', record, probe: { inRecovery: false, epoch: 4 }, candidateId: null })).toMatchObject({ rejoin: false });
  });
});
