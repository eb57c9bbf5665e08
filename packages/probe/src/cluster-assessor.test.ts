import { describe, expect, it } from 'vitest';
import { type Authority, ClusterAssessor, type NodeSpec } from './cluster-assessor.js';
import { DEFAULT_HEALTH_THRESHOLDS } from './health.js';
import { HeartbeatTracker } from './heartbeat.js';
import type { NodeSample, ProbeResult } from './types.js';

const SYSID = '7000000000000000001';
const specs: NodeSpec[] = ['p1', 'r1', 'r2'].map((id, i) => ({ id, host: '127.0.0.1', port: 5000 + i, priority: i, weight: 1, tags: [] }));
const authority: Authority = { epoch: 1, primaryId: 'p1', systemIdentifier: SYSID };
const t0 = Date.parse('2026-01-01T00:00:00Z');

function primary(lsn: string, streaming = ['r1', 'r2']): NodeSample {
  return {
    inRecovery: false, systemIdentifier: SYSID, timeline: 1, currentLsn: lsn, receiveLsn: null, replayLsn: null,
    replayPaused: false, lastReplayAt: null, serverNow: new Date(), walReceiver: null, heartbeat: null, epoch: null, termFloor: null, stateError: null, walReceiverTimeoutMs: 60_000, synchronousStandbyNames: "", defaultReadOnly: false,
    standbys: streaming.map((id, i) => ({
      pid: i, applicationName: id, clientAddr: '127.0.0.1', state: 'streaming', syncState: 'async', sentLsn: lsn, writeLsn: lsn,
      flushLsn: lsn, replayLsn: lsn, writeLagMs: null, flushLagMs: null, replayLagMs: null, replayLagBytes: 0, slotName: id,
    })),
    slots: [],
  };
}

function replica(receive: string, replay: string, extra: Partial<NodeSample> = {}): NodeSample {
  return {
    inRecovery: true, systemIdentifier: SYSID, timeline: 1, currentLsn: null, receiveLsn: receive, replayLsn: replay,
    replayPaused: false, lastReplayAt: null, serverNow: new Date(),
    walReceiver: { status: 'streaming', receivedTimeline: 1, lastMsgReceiptAt: new Date(), senderHost: '127.0.0.1', senderPort: 5000, slotName: 'r' },
    heartbeat: null, epoch: null, termFloor: null, stateError: null, walReceiverTimeoutMs: 60_000, synchronousStandbyNames: "", defaultReadOnly: false, standbys: [], slots: [], ...extra,
  };
}

const ok = (nodeId: string, sample: NodeSample, startedAt = new Date()): ProbeResult => ({ ok: true, nodeId, startedAt, durationMs: 1, sample });
const fail = (nodeId: string, startedAt = new Date()): ProbeResult => ({ ok: false, nodeId, startedAt, durationMs: 1, failure: 'unreachable', error: 'ECONNREFUSED' });
const at = (s: number) => new Date(t0 + s * 1000);

describe('ClusterAssessor', () => {
  it('reports roles, healthy status and zero lag for a caught-up cluster', () => {
    const a = new ClusterAssessor(specs, DEFAULT_HEALTH_THRESHOLDS, null);
    const round = a.assess([ok('p1', primary('0/5000')), ok('r1', replica('0/5000', '0/5000')), ok('r2', replica('0/5000', '0/5000'))], authority);
    expect(round.nodes.map((n) => [n.id, n.role, n.status, n.lagBytes])).toEqual([
      ['p1', 'primary', 'healthy', 0],
      ['r1', 'replica', 'healthy', 0],
      ['r2', 'replica', 'healthy', 0],
    ]);
    expect(round.changes.map((c) => [c.nodeId, c.from, c.to])).toEqual([
      ['p1', 'unknown', 'healthy'],
      ['r1', 'unknown', 'healthy'],
      ['r2', 'unknown', 'healthy'],
    ]);
  });

  it('marks an unreachable replica unhealthy after fall rounds, and healthy again after rise rounds', () => {
    const a = new ClusterAssessor(specs, { ...DEFAULT_HEALTH_THRESHOLDS, fall: 2, rise: 2 }, null);
    const good = () => [ok('p1', primary('0/5000')), ok('r1', replica('0/5000', '0/5000')), ok('r2', replica('0/5000', '0/5000'))];
    a.assess(good(), authority);
    const bad = () => [ok('p1', primary('0/5000')), fail('r1'), ok('r2', replica('0/5000', '0/5000'))];
    expect(a.assess(bad(), authority).changes).toEqual([]);
    const second = a.assess(bad(), authority);
    expect(second.changes).toMatchObject([{ nodeId: 'r1', from: 'healthy', to: 'unhealthy', reason: 'unreachable' }]);
    expect(second.nodes[1]).toMatchObject({ consecutiveFailures: 2, role: 'replica' });
    expect(a.assess(good(), authority).changes).toEqual([]);
    expect(a.assess(good(), authority).changes).toMatchObject([{ nodeId: 'r1', to: 'healthy', reason: 'ok' }]);
  });

  it('flags a replica that left recovery as a second primary at once', () => {
    const a = new ClusterAssessor(specs, DEFAULT_HEALTH_THRESHOLDS, null);
    a.assess([ok('p1', primary('0/5000')), ok('r1', replica('0/5000', '0/5000')), ok('r2', replica('0/5000', '0/5000'))], authority);
    const round = a.assess([ok('p1', primary('0/5000', ['r2'])), ok('r1', primary('0/6000', [])), ok('r2', replica('0/5000', '0/5000'))], authority);
    expect(round.changes).toMatchObject([{ nodeId: 'r1', to: 'unhealthy', reason: 'second-primary' }]);
    expect(round.writable).toEqual(['p1', 'r1']);
  });

  it('calls a former primary that takes writes again a stale primary', () => {
    const a = new ClusterAssessor(specs, DEFAULT_HEALTH_THRESHOLDS, null);
    const after = { epoch: 2, primaryId: 'r1', systemIdentifier: SYSID, formerPrimaryIds: ['p1'] };
    const round = a.assess([ok('p1', primary('0/5000', [])), ok('r1', primary('0/6000', ['r2'])), ok('r2', replica('0/6000', '0/6000'))], after);
    expect(round.nodes[0]).toMatchObject({ status: 'unhealthy', reason: 'stale-primary' });
    expect(round.nodes[1]).toMatchObject({ role: 'primary', status: 'healthy' });
  });

  it('flags a replica on a forked timeline', () => {
    const a = new ClusterAssessor(specs, DEFAULT_HEALTH_THRESHOLDS, null);
    const forked = replica('0/5000', '0/5000', { timeline: 3 });
    const round = a.assess([ok('p1', primary('0/5000')), ok('r1', forked), ok('r2', replica('0/5000', '0/5000'))], authority);
    expect(round.nodes[1]).toMatchObject({ status: 'unhealthy', reason: 'timeline-fork' });
  });

  it('flags a foreign system identifier', () => {
    const a = new ClusterAssessor(specs, DEFAULT_HEALTH_THRESHOLDS, null);
    const round = a.assess([ok('p1', primary('0/5000')), ok('r1', replica('0/5000', '0/5000', { systemIdentifier: '42' })), ok('r2', replica('0/5000', '0/5000'))], authority);
    expect(round.nodes[1]).toMatchObject({ status: 'unhealthy', reason: 'system-id-mismatch' });
  });

  it('names replay stalled when WAL waits and replay does not move for replayStalledAfterMs', () => {
    const a = new ClusterAssessor(specs, { ...DEFAULT_HEALTH_THRESHOLDS, replayStalledAfterMs: 3_000 }, null);
    const round = (s: number, lsn: string) =>
      a.assess([ok('p1', primary(lsn), at(s)), ok('r1', replica(lsn, '0/4000'), at(s)), ok('r2', replica(lsn, lsn), at(s))], authority, at(s));
    round(0, '0/5000');
    expect(round(1, '0/6000').nodes[1]).toMatchObject({ status: 'healthy' });
    expect(round(3, '0/7000').nodes[1]).toMatchObject({ status: 'healthy' });
    expect(round(4, '0/8000').nodes[1]).toMatchObject({ status: 'degraded', reason: 'replay-stalled', lagBytes: 0x4000 });
  });

  it('does not call one pair of samples that caught a record received but not yet replayed a stall', () => {
    // Seen under load: a 184-byte heartbeat record received, not yet replayed, in one sample.
    const a = new ClusterAssessor(specs, { ...DEFAULT_HEALTH_THRESHOLDS, fall: 1 }, null);
    a.assess([ok('p1', primary('0/50B8'), at(0)), ok('r1', replica('0/5000', '0/5000'), at(0)), ok('r2', replica('0/5000', '0/5000'), at(0))], authority, at(0));
    const caught = a.assess([ok('p1', primary('0/50B8'), at(1)), ok('r1', replica('0/50B8', '0/5000'), at(1)), ok('r2', replica('0/50B8', '0/50B8'), at(1))], authority, at(1));
    expect(caught.nodes[1]).toMatchObject({ status: 'healthy' });
    const next = a.assess([ok('p1', primary('0/5170'), at(2)), ok('r1', replica('0/5170', '0/5170'), at(2)), ok('r2', replica('0/5170', '0/5170'), at(2))], authority, at(2));
    expect(next.nodes[1]).toMatchObject({ status: 'healthy' });
  });

  it('keeps the replicas of an unreachable primary serving as stale, their lag growing with the time since it was last seen', () => {
    const a = new ClusterAssessor(specs, { ...DEFAULT_HEALTH_THRESHOLDS, fall: 1, receiverDownAfterMs: 1_000 }, null);
    a.assess([ok('p1', primary('0/5000'), at(0)), ok('r1', replica('0/5000', '0/5000'), at(0)), ok('r2', replica('0/5000', '0/5000'), at(0))], authority, at(0));
    const waiting = replica('0/5000', '0/5000', { walReceiver: null });
    for (const s of [1, 5, 30]) {
      const round = a.assess([fail('p1', at(s)), ok('r1', waiting, at(s)), ok('r2', waiting, at(s))], authority, at(s));
      expect(round.nodes[0]).toMatchObject({ status: 'unhealthy', reason: 'unreachable' });
      expect(round.nodes[1]).toMatchObject({ status: 'degraded', reason: 'stale', lagMs: s * 1000 });
    }
    // The primary is back: the replica is judged normally again.
    const back = a.assess([ok('p1', primary('0/5000'), at(31)), ok('r1', replica('0/5000', '0/5000'), at(31)), ok('r2', replica('0/5000', '0/5000'), at(31))], authority, at(31));
    expect(back.nodes[1]).toMatchObject({ lagMs: 0 });
  });

  it('keeps a known, growing lag on the other replica while the newly promoted primary is not yet seen as one', () => {
    const a = new ClusterAssessor(specs, { ...DEFAULT_HEALTH_THRESHOLDS, fall: 1, receiverDownAfterMs: 1_000 }, null);
    a.assess([ok('p1', primary('0/5000'), at(0)), ok('r1', replica('0/5000', '0/5000'), at(0)), ok('r2', replica('0/5000', '0/5000'), at(0))], authority, at(0));
    // Failover: the epoch names r1, whose last sample is still from recovery.
    const promoted: Authority = { epoch: 2, primaryId: 'r1', systemIdentifier: SYSID };
    const waiting = replica('0/5000', '0/5000', { walReceiver: null });
    const round = a.assess([fail('p1', at(3)), ok('r1', replica('0/5000', '0/5000'), at(3)), ok('r2', waiting, at(3))], promoted, at(3));
    // Before: lagMs null, so no router would read from r2 until r1 was sampled as a primary.
    expect(round.nodes[2]).toMatchObject({ status: 'degraded', reason: 'stale', lagMs: 3_000 });
  });

  it('reports a node whose databases refuse connections as fenced at once', () => {
    const a = new ClusterAssessor(specs, DEFAULT_HEALTH_THRESHOLDS, null);
    const fenced: ProbeResult = { ok: false, nodeId: 'r2', startedAt: new Date(), durationMs: 1, failure: 'fenced', error: 'not currently accepting connections' };
    const round = a.assess([ok('p1', primary('0/5000')), ok('r1', replica('0/5000', '0/5000')), fenced], authority);
    expect(round.nodes[2]).toMatchObject({ status: 'unhealthy', reason: 'fenced' });
  });

  it('marks paused replay unhealthy and a receiver down for too long unhealthy', () => {
    const a = new ClusterAssessor(specs, { ...DEFAULT_HEALTH_THRESHOLDS, receiverDownAfterMs: 1_000 }, null);
    const now = (s: number) => new Date(t0 + s * 1000);
    const noReceiver = replica('0/5000', '0/5000', { walReceiver: null });
    a.assess([ok('p1', primary('0/5000')), ok('r1', replica('0/5000', '0/5000', { replayPaused: true })), ok('r2', noReceiver)], authority, now(0));
    const later = a.assess([ok('p1', primary('0/5000')), ok('r1', replica('0/5000', '0/5000', { replayPaused: true })), ok('r2', noReceiver)], authority, now(2));
    expect(later.nodes[1]).toMatchObject({ status: 'unhealthy', reason: 'replay-paused' });
    expect(later.nodes[2]).toMatchObject({ status: 'unhealthy', reason: 'wal-receiver-down' });
  });

  it('measures time lag from heartbeats: 0 when caught up on an idle primary, growing when behind', () => {
    const hb = new HeartbeatTracker();
    const a = new ClusterAssessor(specs, DEFAULT_HEALTH_THRESHOLDS, hb);
    const s1 = hb.nextSeq(t0);
    hb.recordCommit(s1, t0);
    const s2 = hb.nextSeq(t0 + 1000);
    hb.recordCommit(s2, t0 + 1000);
    const round = a.assess(
      [
        ok('p1', primary('0/5000'), at(40)),
        ok('r1', replica('0/5000', '0/5000', { heartbeat: { seq: s2, at: new Date(t0 + 1000) } }), at(40)),
        ok('r2', replica('0/5000', '0/5000', { heartbeat: { seq: s1, at: new Date(t0) } }), at(40)),
      ],
      authority,
      at(40),
    );
    expect(round.nodes[1]).toMatchObject({ lagMs: 0, status: 'healthy' });
    expect(round.nodes[2]).toMatchObject({ lagMs: 39_000, status: 'unhealthy', reason: 'lagging' });
  });

  it('degrades a primary no replica streams from', () => {
    const a = new ClusterAssessor(specs, { ...DEFAULT_HEALTH_THRESHOLDS, fall: 1 }, null);
    a.assess([ok('p1', primary('0/5000')), ok('r1', replica('0/5000', '0/5000')), ok('r2', replica('0/5000', '0/5000'))], authority);
    const round = a.assess([ok('p1', primary('0/5000', [])), fail('r1'), fail('r2')], authority);
    expect(round.nodes[0]).toMatchObject({ status: 'degraded', reason: 'no-standby-streaming' });
  });

  describe('a primary read-only by default (default_transaction_read_only)', () => {
    const readOnly = (sample: NodeSample): NodeSample => ({ ...sample, defaultReadOnly: true });
    const round = (a: ClusterAssessor, p1: NodeSample, s: number, auth: Authority = authority) =>
      a.assess([ok('p1', p1, at(s)), ok('r1', readOnly(replica('0/5000', '0/5000')), at(s)), ok('r2', replica('0/5000', '0/5000'), at(s))], auth, at(s));

    it('degrades the epoch primary with reason read-only after fall rounds, leaves a read-only replica healthy, and heals after rise rounds', () => {
      const a = new ClusterAssessor(specs, { ...DEFAULT_HEALTH_THRESHOLDS, fall: 3, rise: 2 }, null);
      expect(round(a, primary('0/5000'), 0).nodes.map((n) => n.status)).toEqual(['healthy', 'healthy', 'healthy']);
      expect(round(a, readOnly(primary('0/5000')), 1).changes).toEqual([]);
      expect(round(a, readOnly(primary('0/5000')), 2).changes).toEqual([]);
      const third = round(a, readOnly(primary('0/5000')), 3);
      expect(third.changes).toMatchObject([{ nodeId: 'p1', from: 'healthy', to: 'degraded', reason: 'read-only', detail: expect.stringContaining('25006') }]);
      expect(third.nodes[0]).toMatchObject({ role: 'primary', status: 'degraded', reason: 'read-only' });
      // A replica is read-only anyway: the setting means nothing there.
      expect(third.nodes[1]).toMatchObject({ role: 'replica', status: 'healthy', reason: 'ok' });
      expect(round(a, primary('0/5000'), 4).changes).toEqual([]);
      expect(round(a, primary('0/5000'), 5).changes).toMatchObject([{ nodeId: 'p1', from: 'degraded', to: 'healthy', reason: 'ok' }]);
    });

    it('is not flagged while a job holds the change lock (a switchover drains the primary), and is fall rounds after the lock is gone', () => {
      const a = new ClusterAssessor(specs, { ...DEFAULT_HEALTH_THRESHOLDS, fall: 3, rise: 2 }, null);
      const draining: Authority = { ...authority, changeLockHeld: true };
      round(a, primary('0/5000'), 0);
      for (let s = 1; s <= 10; s += 1) expect(round(a, readOnly(primary('0/5000')), s, draining).nodes[0], `round ${s}`).toMatchObject({ status: 'healthy', reason: 'ok' });
      // A round under the lock breaks a streak: the lock was taken again (a retried switchover).
      round(a, readOnly(primary('0/5000')), 11);
      round(a, readOnly(primary('0/5000')), 12);
      expect(round(a, readOnly(primary('0/5000')), 13, draining).changes).toEqual([]);
      expect(round(a, readOnly(primary('0/5000')), 14).changes).toEqual([]);
      expect(round(a, readOnly(primary('0/5000')), 15).changes).toEqual([]);
      // The lock expired (a crashed worker) or was released with the fence still on: reported.
      expect(round(a, readOnly(primary('0/5000')), 16).changes).toMatchObject([{ nodeId: 'p1', to: 'degraded', reason: 'read-only' }]);
    });

    it('leaves a writable node that is not the epoch primary second-primary, read-only or not', () => {
      const a = new ClusterAssessor(specs, DEFAULT_HEALTH_THRESHOLDS, null);
      const r = a.assess([ok('p1', primary('0/5000')), ok('r1', readOnly(primary('0/6000', []))), ok('r2', replica('0/5000', '0/5000'))], authority);
      expect(r.nodes[1]).toMatchObject({ status: 'unhealthy', reason: 'second-primary' });
    });
  });
});
