import { describe, expect, it } from 'vitest';
import { HeartbeatTracker } from './heartbeat.js';

describe('HeartbeatTracker', () => {
  it('reports 0 for a replica that has the newest heartbeat, however long ago it was written', () => {
    const hb = new HeartbeatTracker();
    const seq = hb.nextSeq(1_000);
    hb.recordCommit(seq, 1_005);
    expect(hb.lagMs(seq, 60_000)).toBe(0);
  });

  it('reports the age of the oldest heartbeat a replica misses', () => {
    const hb = new HeartbeatTracker();
    const a = hb.nextSeq(1_000);
    hb.recordCommit(a, 1_000);
    const b = hb.nextSeq(2_000);
    hb.recordCommit(b, 2_000);
    const c = hb.nextSeq(3_000);
    hb.recordCommit(c, 3_000);
    expect(hb.lagMs(a, 3_500)).toBe(1_500);
    expect(hb.lagMs(b, 3_500)).toBe(500);
    expect(hb.lagMs(c, 3_500)).toBe(0);
  });

  it('measures at the sample time: a heartbeat committed after the sample is not missing, one just before costs a few ms', () => {
    const hb = new HeartbeatTracker();
    const a = hb.nextSeq(1_000);
    hb.recordCommit(a, 1_000);
    const b = hb.nextSeq(2_000);
    hb.recordCommit(b, 2_000);
    // Sampled at 1_500 with a: b did not exist yet, whatever the round's time.
    expect(hb.lagMs(a, 1_500)).toBe(0);
    // Sampled 3 ms after b committed, without it: 3 ms behind, not an interval.
    expect(hb.lagMs(a, 2_003)).toBe(3);
  });

  it('is unknown without a row or before any write, and bounded below after a restart', () => {
    const hb = new HeartbeatTracker();
    expect(hb.lagMs(5, 10)).toBeNull();
    const s = hb.nextSeq(10_000);
    hb.recordCommit(s, 10_000);
    expect(hb.lagMs(null, 10_100)).toBeNull();
    // A row left by a previous run of the monitor: missing at least our first heartbeat.
    expect(hb.lagMs(4_000, 10_100)).toBe(100);
  });

  it('keeps sequence numbers increasing even if the clock steps back', () => {
    const hb = new HeartbeatTracker();
    const a = hb.nextSeq(5_000);
    const b = hb.nextSeq(4_000);
    expect(b).toBeGreaterThan(a);
  });
});
