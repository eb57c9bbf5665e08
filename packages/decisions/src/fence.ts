import type { PrimaryRecord } from '@pgreplica/protocol';

/** Whether to fence a node, and why not when not. */
export type FenceVerdict = { fence: true } | { fence: false; reason: string };

/**
 * Decides whether a node reported writable but not the primary of the
 * epoch must be fenced, on the worker's own probe, with the authority the
 * worker established itself. Never: for another epoch than the job's (the
 * cluster moved on), the primary of the current record, the candidate of a
 * promotion in progress (between `pg_promote` and the epoch bump it looks
 * like a second primary), a node whose own database records this epoch or
 * a later one, an unreachable node, a replica. Pure.
 */
export function decideFence(args: {
  nodeId: string;
  jobEpoch: number;
  record: PrimaryRecord;
  /** The worker's probe of the node: null when it did not answer. `epoch`: the latest epoch its database records. */
  probe: { inRecovery: boolean; epoch: number | null } | null;
  /** The recorded candidate of a promotion of the current epoch, if any. */
  candidateId: string | null;
}): FenceVerdict {
  const { nodeId, jobEpoch, record, probe, candidateId } = args;
  if (record.epoch !== jobEpoch) return { fence: false, reason: `the job is for epoch ${jobEpoch}, the cluster is at epoch ${record.epoch}` };
  if (record.primaryId === nodeId) return { fence: false, reason: 'it is the primary of the current epoch' };
  if (candidateId === nodeId) return { fence: false, reason: `it is the candidate of the promotion in progress for epoch ${record.epoch}` };
  if (probe === null) return { fence: false, reason: 'not reachable' };
  if (probe.inRecovery) return { fence: false, reason: 'in recovery (a replica)' };
  if (probe.epoch !== null && probe.epoch > record.epoch) return { fence: false, reason: `its database records epoch ${probe.epoch}, newer than ${record.epoch}` };
  return { fence: true };
}

/**
 * Decides whether a node may be rejoined as a replica of the current primary
 * (its own writes past the fork discarded): never the primary of the record,
 * never the candidate of a promotion in progress, never a node whose own
 * database records a newer epoch than the record (the record is behind, not
 * the node). Pure.
 */
export function decideRejoin(args: {
  nodeId: string;
  record: PrimaryRecord;
  /** The worker's probe of the node: null when it did not answer (down, or fenced). */
  probe: { inRecovery: boolean; epoch: number | null } | null;
  candidateId: string | null;
}): { rejoin: true } | { rejoin: false; reason: string } {
  const { nodeId, record, probe, candidateId } = args;
  if (record.primaryId === nodeId) return { rejoin: false, reason: 'it is the primary of the current epoch' };
  if (candidateId === nodeId) return { rejoin: false, reason: `it is the candidate of the promotion in progress for epoch ${record.epoch}` };
  if (probe?.epoch != null && probe.epoch > record.epoch) return { rejoin: false, reason: `its database records epoch ${probe.epoch}, newer than ${record.epoch}` };
  return { rejoin: true };
}
