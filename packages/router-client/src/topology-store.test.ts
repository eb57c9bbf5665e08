import type { NodeState, Topology } from '@pgreplica/protocol';
import { describe, expect, it } from 'vitest';
import { TopologyStore } from './topology-store.js';

const at = '2026-01-01T00:00:00.000Z';
const node = (id: string, role: NodeState['role']): NodeState => ({
  id, host: '127.0.0.1', port: 1, role, status: 'healthy', reason: 'ok', priority: 0, weight: 1, tags: [],
  lagBytes: 0, lagMs: 0, replayLsn: null, receiveLsn: null, timeline: 1, lastCheckAt: at, since: at, consecutiveFailures: 0,
});
const topology = (): Topology => ({ cluster: 'main', epoch: 1, primaryId: 'p1', systemIdentifier: '1', observedAt: at, nodes: [node('p1', 'primary'), node('r1', 'replica')] });
const envelope = { v: 1 as const, cluster: 'main', term: 1, epoch: 1, at };

describe('TopologyStore', () => {
  it('keeps a primary the monitor reports read-only (degraded) as the write target: its status never moves writes', () => {
    const store = new TopologyStore();
    expect(store.apply({ ...envelope, seq: 1, type: 'snapshot', topology: topology() }, 1)).toBe('applied');
    const readOnly: NodeState = { ...node('p1', 'primary'), status: 'degraded', reason: 'read-only' };
    expect(store.apply({ ...envelope, seq: 2, type: 'node.status', nodeId: 'p1', from: 'healthy', to: 'degraded', reason: 'read-only', node: readOnly }, 2)).toBe('applied');
    expect(store.primary()).toMatchObject({ id: 'p1', status: 'degraded', reason: 'read-only' });
  });
});
