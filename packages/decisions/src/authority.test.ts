import type { EpochRow } from '@pgreplica/probe';
import type { PrimaryRecord } from '@pgreplica/protocol';
import { describe, expect, it } from 'vitest';
import { resolveAuthority } from './authority.js';

const row = (epoch: number, primaryId: string): EpochRow => ({
  epoch, primaryId, systemIdentifier: '7', cause: epoch === 1 ? 'bootstrap' : 'failover', previousPrimaryId: null, at: '2026-01-01T00:00:00Z', sig: null,
});
const record = (epoch: number, primaryId: string): PrimaryRecord => ({ epoch, primaryId, systemIdentifier: '7', at: '2026-01-01T00:00:00.000Z', cause: 'failover' });
const node = (nodeId: string, writable: boolean, r: EpochRow | null) => ({ nodeId, writable, systemIdentifier: '7', row: r });

describe('resolveAuthority', () => {
  it('keeps the bus record when the databases agree or lag', () => {
    const res = resolveAuthority({ bus: record(3, 'b'), nodes: [node('a', false, row(3, 'b')), node('b', true, row(3, 'b'))], floorEpoch: 3 });
    expect(res).toMatchObject({ kind: 'record', record: { epoch: 3, primaryId: 'b' }, repairBus: false });
  });

  it('restores an empty bus from the databases, never back to epoch 1', () => {
    const res = resolveAuthority({ bus: null, nodes: [node('a', true, row(1, 'a')), node('b', true, row(4, 'b')), node('c', false, row(4, 'b'))], floorEpoch: 0 });
    expect(res).toMatchObject({ kind: 'record', record: { epoch: 4, primaryId: 'b' }, repairBus: true });
  });

  it('prefers the databases over a bus record that is behind (a worker that died between the two writes)', () => {
    const res = resolveAuthority({ bus: record(2, 'a'), nodes: [node('a', true, row(2, 'a')), node('b', true, row(3, 'b'))], floorEpoch: 2 });
    expect(res).toMatchObject({ kind: 'record', record: { epoch: 3, primaryId: 'b' }, repairBus: true });
  });

  it('refuses a bus record below an epoch already seen', () => {
    expect(resolveAuthority({ bus: record(1, 'a'), nodes: [], floorEpoch: 5 })).toMatchObject({ kind: 'none' });
  });

  it('bootstraps on the one writable node when nothing is recorded anywhere, at or above the floor', () => {
    expect(resolveAuthority({ bus: null, nodes: [node('a', true, null), node('b', false, null)], floorEpoch: 0 })).toEqual({ kind: 'bootstrap', primaryId: 'a', systemIdentifier: '7', epoch: 1 });
    expect(resolveAuthority({ bus: null, nodes: [node('a', true, null), node('b', true, null)], floorEpoch: 0 })).toMatchObject({ kind: 'none' });
  });
});
