import type { NodeState, Topology } from '@pgreplica/protocol';
import { describe, expect, it } from 'vitest';
import { formatStatus, shownRole } from './format.js';

const node = (id: string, role: NodeState['role'], reason: NodeState['reason'] = 'ok'): NodeState => ({
  id, host: '127.0.0.1', port: 1, role, status: 'healthy', reason, priority: 0, weight: 1, tags: [],
  lagBytes: 0, lagMs: 0, replayLsn: null, receiveLsn: null, timeline: 2, lastCheckAt: null, since: new Date().toISOString(), consecutiveFailures: 0,
});

describe('status: the epoch names the one primary', () => {
  // Right after a switchover the monitor can still see the deposed primary
  // writable for a round: status must not list two primaries.
  const topology: Topology = {
    cluster: 'main', epoch: 2, primaryId: 'r1', systemIdentifier: '1', observedAt: new Date().toISOString(),
    nodes: [node('p1', 'primary', 'stale-primary'), node('r1', 'primary'), node('r2', 'replica'), node('r3', 'unknown', 'fenced')],
  };

  it('shows the epoch primary as primary and any other writable node as stale', () => {
    expect(topology.nodes.map((n) => shownRole(n, topology))).toEqual(['stale primary', 'primary', 'replica', 'fenced']);
  });

  it("marks the epoch's primary while it is still seen in recovery", () => {
    const promoting = { ...topology, nodes: [node('r1', 'replica')] };
    expect(shownRole(promoting.nodes[0]!, promoting)).toBe('primary (replica)');
  });

  it('prints one primary row, starred, in the status table', () => {
    const text = formatStatus(topology, 'm1', false);
    expect(text).toContain('epoch 2, primary r1');
    expect(text.split('\n').filter((l) => /\bprimary\b/.test(l) && !/stale primary/.test(l) && !l.startsWith('cluster'))).toEqual([expect.stringMatching(/^r1\*\s+primary\s/)]);
  });
});
