import { describe, expect, it } from 'vitest';
import { RouterError } from './errors.js';
import { readToken } from './http/index.js';
import { TokenBucket } from './token-bucket.js';
import { decodeToken, encodeToken, laterToken, PRIMARY_ONLY_LSN, primaryOnlyToken } from './tokens.js';
import { TopologyStore } from './topology-store.js';
import { createEvent, type Topology } from '@pgreplica/protocol';

describe('consistency tokens', () => {
  it('round-trips and orders by LSN', () => {
    const token = encodeToken({ epoch: 3, lsn: '16/b374d848' });
    expect(token).toBe('v1.3.16/B374D848');
    expect(decodeToken(token)).toEqual({ epoch: 3, lsn: '16/B374D848' });
    expect(laterToken({ epoch: 1, lsn: '1/0' }, { epoch: 2, lsn: '0/FFFFFFFF' })).toEqual({ epoch: 1, lsn: '1/0' });
  });

  it('a primary-only token (a committed write whose position is unknown) is a valid token, ordered by epoch', () => {
    const unknown = primaryOnlyToken(3);
    expect(decodeToken(encodeToken(unknown))).toEqual(unknown);
    expect(encodeToken(unknown)).toBe(`v1.3.${PRIMARY_ONLY_LSN}`);
    // It wins over any position of its own or an earlier epoch…
    expect(laterToken({ epoch: 3, lsn: 'FFFFFFFF/0' }, unknown)).toBe(unknown);
    expect(laterToken(unknown, { epoch: 2, lsn: '9/0' })).toBe(unknown);
    // …and yields to one of a later epoch (the new primary has the write, or nobody ever will).
    const later = { epoch: 4, lsn: '0/100' };
    expect(laterToken(unknown, later)).toBe(later);
    expect(laterToken(later, unknown)).toBe(later);
    expect(laterToken(unknown, primaryOnlyToken(5))).toEqual(primaryOnlyToken(5));
  });

  it('refuses what is not a token, with a typed error', () => {
    for (const bad of ['', 'v2.1.0/1', 'v1.x.0/1', 'v1.1.zz', "v1.1.0/1'; DROP TABLE t"]) {
      expect(() => decodeToken(bad)).toThrow(RouterError);
    }
  });

  it('the HTTP helper takes from a header exactly what decodeToken accepts', () => {
    for (const value of ['v1.3.16/B374D848', ' v1.0.0/1 ', '', 'v2.1.0/1', 'v1.x.0/1', 'v1.1.zz', "v1.1.0/1'; DROP TABLE t"]) {
      const decodes = (() => {
        try {
          decodeToken(value);
          return true;
        } catch {
          return false;
        }
      })();
      expect(readToken({ headers: { 'x-pgreplica-token': value } })).toBe(decodes ? value.trim() : null);
    }
  });
});

describe('TokenBucket', () => {
  it('allows a burst, then the rate', () => {
    let t = 0;
    const bucket = new TokenBucket(10, 3, () => t);
    expect([bucket.tryTake(), bucket.tryTake(), bucket.tryTake(), bucket.tryTake()]).toEqual([true, true, true, false]);
    expect(bucket.reserve(0)).toBeUndefined();
    expect(bucket.reserve(100)).toBeCloseTo(100);
    t = 200;
    expect(bucket.tryTake()).toBe(true);
    expect(bucket.tryTake()).toBe(false);
  });

  it('queues waiters: each reservation within the wait is served in turn, the next one refused', () => {
    let t = 0;
    const bucket = new TokenBucket(200, 1, () => t);
    expect(bucket.reserve(100)).toBe(0);
    // Three callers waiting together get the next three tokens, 5 ms apart;
    // none of them is refused because another took "its" token first.
    const waits = [bucket.reserve(100), bucket.reserve(100), bucket.reserve(100)];
    expect(waits.map((w) => Math.round(w ?? -1))).toEqual([5, 10, 15]);
    expect(bucket.reserve(12)).toBeUndefined();
    t = 15;
    expect(Math.round(bucket.reserve(100) ?? -1)).toBe(5);
  });
});

describe('TopologyStore', () => {
  const topology = (epoch: number, primaryId: string): Topology => ({ cluster: 'main', epoch, primaryId, systemIdentifier: '1', nodes: [], observedAt: '2026-01-01T00:00:00.000Z' });
  const snap = (term: number, seq: number, epoch: number, primaryId: string) => createEvent('snapshot', { topology: topology(epoch, primaryId) }, { cluster: 'main', term, seq, epoch });

  it('applies events in (term, seq) order and drops older ones', () => {
    const store = new TopologyStore();
    expect(store.apply(snap(1, 1, 1, 'p1'), 1)).toBe('applied');
    expect(store.apply(snap(1, 1, 1, 'p2'), 2)).toBe('stale');
    expect(store.apply(snap(1, 2, 1, 'p2'), 3)).toBe('applied');
    expect(store.apply(snap(2, 0, 1, 'p3'), 4)).toBe('applied');
    expect(store.topology?.primaryId).toBe('p3');
  });

  it('reports a gap so the caller reloads the snapshot', () => {
    const store = new TopologyStore();
    store.apply(snap(1, 1, 1, 'p1'), 1);
    expect(store.apply(snap(1, 5, 1, 'p1'), 2)).toBe('applied-gap');
  });

  it('follows a bus that was reset (term back to 1) only for a newer snapshot, never a replayed older one', () => {
    const store = new TopologyStore();
    const at = (ms: number) => new Date(Date.parse('2026-01-01T00:00:00Z') + ms);
    const snapAt = (term: number, seq: number, epoch: number, primaryId: string, ms: number) =>
      createEvent('snapshot', { topology: topology(epoch, primaryId) }, { cluster: 'main', term, seq, epoch, at: at(ms) });
    expect(store.apply(snapAt(7, 1, 3, 'p2', 1_000), 1)).toBe('applied');
    // A replayed snapshot from before: older, whatever its position.
    expect(store.apply(snapAt(1, 9, 3, 'p1', 500), 2)).toBe('stale');
    // Redis restarted empty and a monitor began again at term 1: its newer snapshot is followed.
    expect(store.apply(snapAt(1, 1, 3, 'p2', 2_000), 3)).toBe('applied-reset');
    expect(store.position).toEqual({ term: 1, seq: 1 });
    // A gap across a term change is a gap.
    expect(store.apply(snapAt(2, 4, 3, 'p2', 3_000), 4)).toBe('applied-gap');
  });

  it('never goes back to an older epoch', () => {
    const store = new TopologyStore();
    store.apply(snap(1, 1, 3, 'p2'), 1);
    expect(store.apply(snap(1, 2, 2, 'p1'), 2)).toBe('old-epoch');
    expect(store.topology?.primaryId).toBe('p2');
  });

  it('holds writes from switchover.started until primary.changed', () => {
    const store = new TopologyStore();
    store.apply(snap(1, 1, 1, 'p1'), 1);
    store.apply(createEvent('switchover.started', { fromId: 'p1', toId: 'r1', maxWritePauseMs: 5_000 }, { cluster: 'main', term: 1, seq: 2, epoch: 1 }), 2);
    expect(store.switchover).toMatchObject({ toId: 'r1' });
    store.apply(createEvent('primary.changed', { fromId: 'p1', toId: 'r1', cause: 'switchover' }, { cluster: 'main', term: 1, seq: 3, epoch: 2 }), 3);
    expect(store.switchover).toBeNull();
    expect(store.topology).toMatchObject({ epoch: 2, primaryId: 'r1' });
  });
});
