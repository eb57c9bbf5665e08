import type { EpochRow } from '@pgreplica/probe';
import type { PrimaryRecord } from '@pgreplica/protocol';

/** What one node says about the epoch, from its own `pgreplica.epoch` table. */
export interface NodeEpochView {
  nodeId: string;
  /** Whether it answered as a primary (not in recovery). */
  writable: boolean;
  systemIdentifier: string;
  /** Its latest epoch row; null when it has none. */
  row: EpochRow | null;
}

/** The authority a monitor should judge by, and what to do about the bus record. */
export type AuthorityResolution =
  | { kind: 'record'; record: PrimaryRecord; repairBus: boolean; reason: string }
  | { kind: 'bootstrap'; primaryId: string; systemIdentifier: string; epoch: number }
  | { kind: 'none'; reason: string };

function fromRow(row: EpochRow): PrimaryRecord {
  const cause = ['bootstrap', 'failover', 'switchover', 'manual'].includes(row.cause) ? (row.cause as PrimaryRecord['cause']) : 'failover';
  return {
    epoch: row.epoch,
    primaryId: row.primaryId,
    systemIdentifier: row.systemIdentifier,
    at: new Date(row.at).toISOString(),
    cause,
    ...(row.previousPrimaryId ? { previousPrimaryId: row.previousPrimaryId } : {}),
  };
}

/**
 * Decides who is primary in which epoch, with the database as the durable
 * truth and the bus as its copy: the highest epoch recorded in any node's
 * `pgreplica.epoch` wins over a lower bus record (Redis that restarted empty
 * or lost its last write), and nothing ever goes below `floorEpoch` (the
 * highest epoch this observer has seen). With no record anywhere and exactly
 * one writable node, that node is the first primary (bootstrap). Pure.
 */
export function resolveAuthority(args: { bus: PrimaryRecord | null; nodes: readonly NodeEpochView[]; floorEpoch: number }): AuthorityResolution {
  const { bus, nodes, floorEpoch } = args;
  const rows = nodes.map((n) => n.row).filter((r): r is EpochRow => r !== null);
  const best = rows.reduce<EpochRow | null>((max, r) => (max === null || r.epoch > max.epoch ? r : max), null);
  if (best && (bus === null || best.epoch > bus.epoch)) {
    if (best.epoch < floorEpoch) return { kind: 'none', reason: `the highest epoch in the databases (${best.epoch}) is below one already seen (${floorEpoch})` };
    const reason = bus === null ? 'the bus has no primary record: restored from the databases' : `the bus record (epoch ${bus.epoch}) is behind the databases (epoch ${best.epoch})`;
    return { kind: 'record', record: fromRow(best), repairBus: true, reason };
  }
  if (bus) {
    if (bus.epoch < floorEpoch) return { kind: 'none', reason: `the bus record (epoch ${bus.epoch}) is below one already seen (${floorEpoch}): refusing it` };
    return { kind: 'record', record: bus, repairBus: false, reason: 'bus record' };
  }
  const writable = nodes.filter((n) => n.writable);
  if (writable.length !== 1) return { kind: 'none', reason: `no primary record, and ${writable.length} writable nodes` };
  const only = writable[0]!;
  return { kind: 'bootstrap', primaryId: only.nodeId, systemIdentifier: only.systemIdentifier, epoch: Math.max(1, floorEpoch) };
}
