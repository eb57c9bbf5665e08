import { describe, expect, it } from 'vitest';
import { decideFence } from './fence.js';

const record = { epoch: 3, primaryId: 'p2', systemIdentifier: '1', at: '2026-01-01T00:00:00.000Z', cause: 'failover' as const };

describe('decideFence', () => {
  it('fences a writable node that is not the primary of the record', () => {
    expect(decideFence({ nodeId: 'p1', record, probe: { inRecovery: false } })).toEqual({ fence: true });
  });

  it('never fences the recorded primary, an unreachable node or a replica', () => {
    expect(decideFence({ nodeId: 'p2', record, probe: { inRecovery: false } })).toMatchObject({ fence: false });
    expect(decideFence({ nodeId: 'p1', record, probe: null })).toMatchObject({ fence: false, reason: 'not reachable' });
    expect(decideFence({ nodeId: 'p1', record, probe: { inRecovery: true } })).toMatchObject({ fence: false });
  });
});
