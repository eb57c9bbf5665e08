import { describe, expect, it } from 'vitest';
import { receiverSample } from './test-support.js';
import { livingWitnesses, observeWitnesses } from './witnesses.js';

const now = Date.parse('2026-01-01T00:00:10Z');
const rules = { otherNodeAddresses: new Set(['db2:5432', 'db3:5432']), witnessFreshMs: 20_000, nowMs: now };

describe('observeWitnesses', () => {
  it('counts a reachable replica streaming from the primary within witnessFreshMs', () => {
    const obs = observeWitnesses([{ nodeId: 'r1', reachable: true, sample: receiverSample('streaming', 1_000, now) }], rules);
    expect(obs[0]).toMatchObject({ nodeId: 'r1', reachable: true, receiver: 'streaming', lastMessageAgeMs: 1_000, streamingFromPrimary: true });
    expect(livingWitnesses(obs)).toEqual(['r1']);
  });

  it('does not count a stale receiver, a cascading one, a waiting one or an unreachable node', () => {
    const obs = observeWitnesses(
      [
        { nodeId: 'stale', reachable: true, sample: receiverSample('streaming', 25_000, now) },
        { nodeId: 'cascade', reachable: true, sample: receiverSample('streaming', 100, now, 'db2:5432') },
        { nodeId: 'waiting', reachable: true, sample: receiverSample('waiting', 100, now) },
        { nodeId: 'gone', reachable: false, sample: receiverSample('streaming', 100, now) },
      ],
      rules,
    );
    expect(livingWitnesses(obs)).toEqual([]);
    expect(obs.find((o) => o.nodeId === 'gone')).toMatchObject({ reachable: false, receiver: null });
  });
});
