import { describe, expect, it } from 'vitest';
import { receiverSample } from './test-support.js';
import { livingWitnesses, observeWitnesses } from './witnesses.js';

const now = Date.parse('2026-01-01T00:00:10Z');
const rules = { otherNodeAddresses: new Set(['db2:5432', 'db3:5432']), witnessFreshMs: 20_000, silenceMarginMs: 1_000, nowMs: now };

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

  it('waits as long as an idle primary may leave a healthy receiver silent: half its wal_receiver_timeout, plus the margin', () => {
    // 60 s timeout: a receiver may hear nothing for 30 s on an idle primary; 25 s of silence proves nothing.
    const idle = observeWitnesses([{ nodeId: 'r1', reachable: true, sample: receiverSample('streaming', 25_000, now, 'db1:5432', '0/3000000', 60_000) }], rules);
    expect(idle[0]).toMatchObject({ streamingFromPrimary: true, freshWithinMs: 31_000 });
    // A 10 s timeout: pings every 5 s, so 20 s (witnessFreshMs) rules.
    const short = observeWitnesses([{ nodeId: 'r1', reachable: true, sample: receiverSample('streaming', 25_000, now) }], rules);
    expect(short[0]).toMatchObject({ streamingFromPrimary: false, freshWithinMs: 20_000 });
  });
});
