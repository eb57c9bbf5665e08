import { describe, expect, it } from 'vitest';
import { isGap, isNewerPosition } from './events.js';
import { jobId } from './jobs.js';
import { busKeys, redisRetryDelayMs } from './keys.js';

describe('busKeys', () => {
  it('puts the cluster in a hash tag on every key', () => {
    const keys = busKeys('main');
    for (const key of Object.values(keys)) {
      expect(typeof key === 'function' ? key(7) : key).toMatch(/^pgreplica:\{main\}/);
    }
    expect(keys.events).toBe('pgreplica:{main}:events');
  });

  it('refuses names that would break a key', () => {
    expect(() => busKeys('a}b')).toThrow(/cluster name/);
    expect(() => busKeys('')).toThrow(/cluster name/);
  });
});

describe('event order', () => {
  it('orders by term, then seq', () => {
    expect(isNewerPosition({ term: 1, seq: 5 }, null)).toBe(true);
    expect(isNewerPosition({ term: 1, seq: 6 }, { term: 1, seq: 5 })).toBe(true);
    expect(isNewerPosition({ term: 1, seq: 5 }, { term: 1, seq: 5 })).toBe(false);
    expect(isNewerPosition({ term: 2, seq: 0 }, { term: 1, seq: 99 })).toBe(true);
    expect(isNewerPosition({ term: 1, seq: 100 }, { term: 2, seq: 0 })).toBe(false);
  });

  it('detects a gap within a term only', () => {
    expect(isGap({ term: 1, seq: 7 }, { term: 1, seq: 5 })).toBe(true);
    expect(isGap({ term: 1, seq: 6 }, { term: 1, seq: 5 })).toBe(false);
    expect(isGap({ term: 2, seq: 0 }, { term: 1, seq: 5 })).toBe(false);
    // A new term starts at seq 1: its seq 3 first means seqs 1 and 2 were missed.
    expect(isGap({ term: 2, seq: 1 }, { term: 1, seq: 5 })).toBe(false);
    expect(isGap({ term: 2, seq: 3 }, { term: 1, seq: 5 })).toBe(true);
  });
});

describe('jobId', () => {
  it('is one id per epoch for promotions and contains no colon', () => {
    expect(jobId('promote', { cluster: 'main', epoch: 4 })).toBe('promote.main.e4');
    expect(jobId('slot-cleanup', { cluster: 'main', epoch: 4, slotName: 'r1' })).not.toContain(':');
  });
});

describe('redisRetryDelayMs', () => {
  it('doubles from 50 ms to a 2 s cap, jittered into the upper half', () => {
    expect([0, 1, 2, 5, 6, 20].map((n) => redisRetryDelayMs(n, () => 1))).toEqual([50, 100, 200, 1_600, 2_000, 2_000]);
    expect(redisRetryDelayMs(20, () => 0)).toBe(1_000);
  });
});
