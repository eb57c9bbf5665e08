import type { NodeSample, ProbeResult } from '@pgreplica/probe';
import { describe, expect, it } from 'vitest';
import { fenceRefusal } from './pool-set.js';
import { choosePrimary } from './probe-source.js';

const SYSID = '7300000000000000001';

function probed(nodeId: string, inRecovery: boolean, epoch: number | null): ProbeResult {
  const sample = {
    inRecovery,
    systemIdentifier: SYSID,
    epoch: epoch === null ? null : { epoch, primaryId: nodeId, systemIdentifier: SYSID, cause: 'failover', previousPrimaryId: null, at: new Date(0).toISOString(), sig: null },
  } as unknown as NodeSample;
  return { ok: true, nodeId, startedAt: new Date(0), durationMs: 1, sample };
}

const down = (nodeId: string): ProbeResult => ({ ok: false, nodeId, startedAt: new Date(0), durationMs: 1, failure: 'unreachable', error: 'ECONNREFUSED' });

describe('client-side fencing by the database', () => {
  it('refuses a write server that records an older epoch than the router (a deposed primary restarted writable)', () => {
    expect(fenceRefusal('p1', { inRecovery: false, systemIdentifier: SYSID, epoch: 1 }, 2, SYSID)).toMatch(/records epoch 1.*epoch 2/);
    expect(fenceRefusal('r1', { inRecovery: false, systemIdentifier: SYSID, epoch: 2 }, 2, SYSID)).toBeNull();
    // A later epoch than the router knows: the newer primary, written to (the router catches up).
    expect(fenceRefusal('r1', { inRecovery: false, systemIdentifier: SYSID, epoch: 3 }, 2, SYSID)).toBeNull();
    // No pgreplica tables (or no right to read them): the identity checks only.
    expect(fenceRefusal('p1', { inRecovery: false, systemIdentifier: SYSID, epoch: null }, 2, SYSID)).toBeNull();
    expect(fenceRefusal('p1', { inRecovery: true, systemIdentifier: SYSID, epoch: 2 }, 2, SYSID)).toMatch(/in recovery/);
    expect(fenceRefusal('x', { inRecovery: false, systemIdentifier: '1', epoch: 2 }, 2, SYSID)).toMatch(/system identifier/);
  });

  it('the primary found by asking the nodes is the writable one recording the highest epoch, never below the known one', () => {
    const known = { epoch: 1, primaryId: 'p1', systemIdentifier: SYSID };
    // The deposed primary back writable at epoch 1, the promoted replica at 2.
    expect(choosePrimary([probed('p1', false, 1), probed('r1', false, 2), probed('r2', true, 2)], known)).toEqual({ epoch: 2, primaryId: 'r1', systemIdentifier: SYSID });
    // Before the promotion: the old primary dead, nobody writable: what the router knew.
    expect(choosePrimary([down('p1'), probed('r1', true, 1), probed('r2', true, 1)], known)).toEqual(known);
    // A router already at epoch 2 never goes back to a writable node of epoch 1.
    expect(choosePrimary([probed('p1', false, 1)], { epoch: 2, primaryId: 'r1', systemIdentifier: SYSID })).toEqual({ epoch: 2, primaryId: 'r1', systemIdentifier: SYSID });
    // Two writable nodes at the same epoch: the known one; neither known: undecided.
    expect(choosePrimary([probed('p1', false, 1), probed('r1', false, 1)], known).primaryId).toBe('p1');
    expect(choosePrimary([probed('a', false, 1), probed('b', false, 1)], { ...known, primaryId: null }).primaryId).toBeNull();
  });
});
