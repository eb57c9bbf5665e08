import type { NodeSample, RoundAssessment } from '@pgreplica/probe';
import type { NodeState, PrimaryRecord } from '@pgreplica/protocol';
import { resolveConfig } from '@pgreplica/runtime';
import { describe, expect, it } from 'vitest';
import { RemediationPlanner } from './remediation-planner.js';

const t0 = Date.parse('2026-01-01T00:00:00Z');
const config = resolveConfig(
  {
    cluster: 'main',
    redis: { url: 'redis://127.0.0.1:1' },
    nodes: [
      { id: 'p1', host: 'db1', port: 5432 },
      { id: 'r1', host: 'db2', port: 5432 },
    ],
    database: { user: 'u' },
    failover: { policy: 'auto', failoverAfterMs: 1_000 },
    slots: { maxRetainedBytes: 100, inactiveGraceMs: 5_000 },
  },
  {},
);
const record: PrimaryRecord = { epoch: 4, primaryId: 'p1', systemIdentifier: '1', at: new Date(t0).toISOString(), cause: 'bootstrap' };
const node = (id: string, role: NodeState['role'], status: NodeState['status'], reason: NodeState['reason'], sinceMs = t0): NodeState => ({
  id, host: id === 'p1' ? 'db1' : 'db2', port: 5432, role, status, reason, priority: 0, weight: 1, tags: [], lagBytes: 0, lagMs: 0,
  replayLsn: null, receiveLsn: null, timeline: 1, lastCheckAt: null, since: new Date(sinceMs).toISOString(), consecutiveFailures: 0,
});
const round = (nodes: NodeState[], primarySample: NodeSample | null = null): RoundAssessment => ({
  nodes, changes: [], primarySample, reachable: new Set(nodes.filter((n) => n.reason !== 'unreachable').map((n) => n.id)), writable: [],
});
const noSample = () => null;

describe('RemediationPlanner', () => {
  it('plans a promotion, with its deterministic id, once the primary is dead long enough', () => {
    const planner = new RemediationPlanner(config);
    const dead = round([node('p1', 'primary', 'unhealthy', 'unreachable'), node('r1', 'replica', 'healthy', 'ok')]);
    expect(planner.plan(dead, record, false, noSample, t0 + 500).jobs).toEqual([]);
    const plan = planner.plan(dead, record, false, noSample, t0 + 1_500);
    expect(plan.jobs).toMatchObject([{ name: 'promote', dedupeId: 'promote.main.e4', payload: { epoch: 4, failedPrimaryId: 'p1', automatic: true } }]);
  });

  it('announces a suppressed failover once per episode', () => {
    const planner = new RemediationPlanner(config);
    const dead = round([node('p1', 'primary', 'unhealthy', 'unreachable'), node('r1', 'replica', 'healthy', 'ok')]);
    const first = planner.plan(dead, record, true, noSample, t0 + 2_000);
    const second = planner.plan(dead, record, true, noSample, t0 + 3_000);
    expect([first.suppressed?.announce, second.suppressed?.announce]).toEqual([true, false]);
    expect(first.suppressed?.reason).toBe('paused');
  });

  it('plans a fence for a writable node that is not the primary of the epoch', () => {
    const planner = new RemediationPlanner(config);
    const plan = planner.plan(round([node('p1', 'primary', 'healthy', 'ok'), node('r1', 'primary', 'unhealthy', 'second-primary')]), record, false, noSample, t0);
    expect(plan.jobs).toMatchObject([{ name: 'fence', dedupeId: 'fence.main.e4.r1', payload: { nodeId: 'r1' } }]);
  });

  it('plans a repoint for a replica whose WAL receiver stays down while the primary answers; not while paused or with the primary away', () => {
    const planner = new RemediationPlanner(config);
    const nodes = [node('p1', 'primary', 'healthy', 'ok'), node('r1', 'replica', 'unhealthy', 'wal-receiver-down')];
    const sample = { slots: [], standbys: [] } as unknown as NodeSample;
    expect(planner.plan(round(nodes, sample), record, false, noSample, t0).jobs).toMatchObject([{ name: 'repoint', dedupeId: 'repoint.main.e4.r1', payload: { nodeId: 'r1', primaryId: 'p1', epoch: 4 } }]);
    expect(planner.plan(round(nodes, sample), record, true, noSample, t0).jobs).toEqual([]);
    expect(planner.plan(round(nodes, null), record, false, noSample, t0).jobs).toEqual([]);
    const degraded = [node('p1', 'primary', 'healthy', 'ok'), node('r1', 'replica', 'degraded', 'wal-receiver-down')];
    expect(planner.plan(round(degraded, sample), record, false, noSample, t0).jobs).toEqual([]);
  });

  it('plans a repoint for a replica that streams, but not from the primary (a cascade from the old primary)', () => {
    const planner = new RemediationPlanner(config);
    const nodes = [node('p1', 'primary', 'healthy', 'ok'), node('r1', 'replica', 'healthy', 'ok')];
    const primary = (standbys: object[]) => ({ slots: [], standbys }) as unknown as NodeSample;
    const streaming = (id: string) => (id === 'r1' ? ({ inRecovery: true, walReceiver: { status: 'streaming' } } as unknown as NodeSample) : null);
    expect(planner.plan(round(nodes, primary([])), record, false, streaming, t0).jobs).toMatchObject([{ name: 'repoint', payload: { nodeId: 'r1', primaryId: 'p1' } }]);
    expect(planner.plan(round(nodes, primary([{ slotName: 'r1', applicationName: 'x', state: 'streaming' }])), record, false, streaming, t0).jobs).toEqual([]);
    expect(planner.plan(round(nodes, primary([{ slotName: null, applicationName: 'r1', state: 'streaming' }])), record, false, streaming, t0).jobs).toEqual([]);
  });

  it('plans a slot cleanup for a slot inactive past the grace period', () => {
    const planner = new RemediationPlanner(config);
    const sample = { slots: [{ slotName: 'old', slotType: 'physical', active: false, activePid: null, walStatus: 'reserved', safeWalSizeBytes: null, retainedBytes: 1_000 }] } as unknown as NodeSample;
    const r = round([node('p1', 'primary', 'healthy', 'ok')], sample);
    expect(planner.plan(r, record, false, noSample, t0).jobs).toEqual([]);
    expect(planner.plan(r, record, false, noSample, t0 + 5_000).jobs).toMatchObject([{ name: 'slot-cleanup', payload: { slotName: 'old' } }]);
  });

  it('while paused plans no slot cleanup, but still fences a second primary', () => {
    const planner = new RemediationPlanner(config);
    const sample = { slots: [{ slotName: 'old', slotType: 'physical', active: false, activePid: null, walStatus: 'reserved', safeWalSizeBytes: null, retainedBytes: 1_000 }] } as unknown as NodeSample;
    const r = round([node('p1', 'primary', 'healthy', 'ok'), node('r1', 'primary', 'unhealthy', 'second-primary')], sample);
    planner.plan(r, record, true, noSample, t0);
    expect(planner.plan(r, record, true, noSample, t0 + 5_000).jobs.map((j) => j.name)).toEqual(['fence']);
  });
});
