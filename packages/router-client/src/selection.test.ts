import type { NodeState } from '@pgreplica/protocol';
import { describe, expect, it } from 'vitest';
import { NodeStats } from './node-stats.js';
import { lagNowMs, rankReplicas, ReplicaSelector } from './selection.js';

const node = (id: string, extra: Partial<NodeState> = {}): NodeState => ({
  id, host: '127.0.0.1', port: 1, role: 'replica', status: 'healthy', reason: 'ok', priority: 0, weight: 1, tags: [],
  lagBytes: 0, lagMs: 10, replayLsn: '0/5000', receiveLsn: '0/5000', timeline: 1, lastCheckAt: null, since: '2026-01-01T00:00:00Z', consecutiveFailures: 0,
  ...extra,
});
const primary = node('p1', { role: 'primary' });
const now = 1_000_000;

function seq(values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

function share(nodes: NodeState[], stats: Map<string, NodeStats>, runs = 2_000): Record<string, number> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < runs; i++) {
    const first = rankReplicas(nodes, stats, {}, now).replicas[0]?.node.id ?? 'none';
    counts[first] = (counts[first] ?? 0) + 1;
  }
  return Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, v / runs]));
}

describe('rankReplicas', () => {
  it('spreads reads over equal replicas, by weight', () => {
    const s = share([primary, node('r1'), node('r2', { weight: 3 })], new Map());
    expect(s.r1).toBeGreaterThan(0.15);
    expect(s.r1).toBeLessThan(0.35);
    expect(s.r2).toBeGreaterThan(0.65);
  });

  it('prefers healthy over degraded; priority orders the rest (the failover order of reads)', () => {
    const r = rankReplicas([node('r1', { status: 'degraded' }), node('r2', { priority: 5 }), node('r3', { priority: 1 })], new Map(), {}, now, seq([0.01]));
    expect(r.replicas.map((x) => x.node.id)).toEqual(['r3', 'r2', 'r1']);
  });

  it('does not make priorities strict tiers: reads spread over healthy replicas of priorities 10 and 20 by weight', () => {
    const s = share([primary, node('r1', { priority: 10 }), node('r2', { priority: 20 })], new Map());
    expect(s.r1).toBeGreaterThan(0.35);
    expect(s.r2).toBeGreaterThan(0.35);
    const weighted = share([primary, node('r1', { priority: 10, weight: 3 }), node('r2', { priority: 20 })], new Map());
    expect(weighted.r1).toBeGreaterThan(0.65);
    expect(weighted.r2).toBeGreaterThan(0.15);
  });

  it('excludes unhealthy, noloadbalance, banned and primary nodes', () => {
    const banned = new NodeStats();
    banned.ban(now, 500, 30_000, () => 1);
    const r = rankReplicas(
      [primary, node('r1', { status: 'unhealthy' }), node('r2', { tags: ['noloadbalance'] }), node('r3'), node('r4')],
      new Map([['r4', banned]]),
      {},
      now,
    );
    expect(r.replicas.map((x) => x.node.id)).toEqual(['r3']);
    expect(rankReplicas([primary, node('r1', { status: 'unhealthy' })], new Map(), {}, now)).toEqual({ replicas: [], none: 'primary:no-replica' });
  });

  it('applies maxLagMs: unknown or larger lag does not qualify', () => {
    const nodes = [node('r1', { lagMs: 5_000 }), node('r2', { lagMs: null }), node('r3', { lagMs: 100 })];
    expect(rankReplicas(nodes, new Map(), { maxLagMs: 1_000 }, now).replicas.map((x) => x.node.id)).toEqual(['r3']);
    expect(rankReplicas(nodes.slice(0, 2), new Map(), { maxLagMs: 1_000 }, now).none).toBe('primary:lag');
  });

  it('puts replicas known to have replayed a token before those that must be checked', () => {
    const nodes = [node('r1', { replayLsn: '0/1000' }), node('r2', { replayLsn: '0/9000' })];
    const r = rankReplicas(nodes, new Map(), { minLsn: '0/5000' }, now, seq([0.99]));
    expect(r.replicas.map((x) => [x.node.id, x.lsn])).toEqual([
      ['r2', 'known'],
      ['r1', 'check'],
    ]);
    const seen = new NodeStats();
    seen.observedReplayLsn = '0/6000';
    expect(rankReplicas(nodes, new Map([['r1', seen]]), { minLsn: '0/5000' }, now, seq([0.1])).replicas.every((x) => x.lsn === 'known')).toBe(true);
  });

  it('gives a slow replica only a trickle, so its estimate stays fresh', () => {
    const fast = new NodeStats();
    const slow = new NodeStats();
    for (let i = 0; i < 20; i++) {
      fast.record(1, true, now);
      slow.record(40, true, now);
    }
    const s = share([node('r1'), node('r2')], new Map([['r1', fast], ['r2', slow]]), 5_000);
    expect(s.r2).toBeGreaterThan(0);
    expect(s.r2).toBeLessThan(0.05);
  });

  it('steers away from a replica with recent errors', () => {
    const flaky = new NodeStats();
    flaky.addError(now);
    flaky.addError(now);
    const s = share([node('r1'), node('r2')], new Map([['r2', flaky]]));
    expect(s.r1).toBeGreaterThan(0.9);
  });
});

describe('ReplicaSelector', () => {
  const statsMap = () => {
    const map = new Map<string, NodeStats>();
    const statsOf = (id: string) => {
      if (!map.has(id)) map.set(id, new NodeStats());
      return map.get(id)!;
    };
    return { map, statsOf };
  };

  function picks(selector: ReplicaSelector, nodes: NodeState[], runs = 4_000, maxLagMs = 30_000): Record<string, number> {
    const counts: Record<string, number> = {};
    for (let i = 0; i < runs; i++) {
      const id = selector.pick(nodes, maxLagMs, now)?.id ?? 'none';
      counts[id] = (counts[id] ?? 0) + 1;
    }
    return Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, v / runs]));
  }

  it('spreads reads by weight across priorities, like rankReplicas', () => {
    const { statsOf } = statsMap();
    const selector = new ReplicaSelector(statsOf, 30_000);
    const s = picks(selector, [primary, node('r1', { priority: 10, weight: 3 }), node('r2', { priority: 20 })]);
    expect(s.r1).toBeGreaterThan(0.65);
    expect(s.r1).toBeLessThan(0.85);
    expect(s.none).toBeUndefined();
  });

  it('is load-aware at the moment of the pick: of two draws, the one with fewer reads in flight', () => {
    const { statsOf } = statsMap();
    const selector = new ReplicaSelector(statsOf, 30_000);
    const nodes = [node('r1'), node('r2')];
    statsOf('r1').inFlight = 5;
    const s = picks(selector, nodes);
    expect(s.r2).toBeGreaterThan(0.7);
  });

  it('skips a node banned since the last ranking, honours a per-call lag bound, and says none when nothing qualifies', () => {
    const { statsOf } = statsMap();
    const selector = new ReplicaSelector(statsOf, 30_000, { refreshMs: 60_000 });
    const nodes = [node('r1', { lagMs: 10 }), node('r2', { lagMs: 2_000 })];
    selector.pick(nodes, 30_000, now);
    statsOf('r1').ban(now, 500, 30_000, () => 1);
    expect(picks(selector, nodes)).toEqual({ r2: 1 });
    expect(picks(selector, nodes, 100, 1_000)).toEqual({ none: 1 });
    statsOf('r1').bannedUntil = 0;
    expect(picks(selector, nodes, 100, 1_000)).toEqual({ r1: 1 });
  });

  it('re-ranks when invalidated: a replica marked unhealthy in place takes no more reads', () => {
    const { statsOf } = statsMap();
    const selector = new ReplicaSelector(statsOf, 30_000, { refreshMs: 60_000 });
    const nodes = [node('r1'), node('r2')];
    expect(Object.keys(picks(selector, nodes)).sort()).toEqual(['r1', 'r2']);
    nodes[0] = node('r1', { status: 'unhealthy' });
    selector.invalidate();
    expect(picks(selector, nodes)).toEqual({ r2: 1 });
  });
});

describe('the lag of a stale replica (its primary unreachable)', () => {
  // Checked 5 s before `now` at 3 s behind: 8 s behind now, though the bus still says 3 s.
  const checkedAt = new Date(now - 5_000).toISOString();
  const stale = node('r1', { status: 'degraded', reason: 'stale', lagMs: 3_000, lastCheckAt: checkedAt });

  it('grows from the monitor\'s last check; any other lag is as the bus says', () => {
    expect(lagNowMs(stale, now)).toBe(8_000);
    expect(lagNowMs(node('r2', { status: 'degraded', reason: 'lagging', lagMs: 3_000, lastCheckAt: checkedAt }), now)).toBe(3_000);
    // A check "in the future" (clock skew): never below what the bus said.
    expect(lagNowMs({ ...stale, lastCheckAt: new Date(now + 5_000).toISOString() }, now)).toBe(3_000);
  });

  it('no longer qualifies for a bound it passed since the last snapshot, with or without a ranking in between', () => {
    const stats = new NodeStats();
    expect(rankReplicas([stale], new Map(), { maxLagMs: 6_000 }, now)).toMatchObject({ replicas: [], none: 'primary:lag' });
    expect(rankReplicas([stale], new Map(), { maxLagMs: 9_000 }, now).replicas).toHaveLength(1);
    const selector = new ReplicaSelector(() => stats, 30_000, { refreshMs: 60_000 });
    expect(selector.pick([stale], 6_000, now - 4_000)?.id).toBe('r1');
    expect(selector.pick([stale], 6_000, now)).toBeNull();
  });
});

describe('NodeStats ban', () => {
  it('backs off exponentially with jitter, capped', () => {
    const stats = new NodeStats();
    const lengths = [1, 2, 3, 4, 5, 6, 7, 8].map(() => stats.ban(now, 500, 4_000, () => 1));
    expect(lengths).toEqual([500, 1_000, 2_000, 4_000, 4_000, 4_000, 4_000, 4_000]);
    const jittered = new NodeStats().ban(now, 500, 4_000, () => 0);
    expect(jittered).toBe(250);
    expect(stats.isBanned(now + 3_999)).toBe(true);
    expect(stats.isBanned(now + 4_000)).toBe(false);
  });
});
