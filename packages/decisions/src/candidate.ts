import { compareLsn, lsnDiffBytes, type NodeTag } from '@pgreplica/protocol';
import type { WitnessObservation } from './witnesses.js';

/** A configured node, as the candidate choice needs it. */
export interface CandidateNode {
  id: string;
  /** Lower wins among equally advanced replicas. */
  priority: number;
  tags: readonly NodeTag[];
}

/** Result of {@link chooseCandidate}. */
export type CandidateChoice =
  | { candidateId: string; reference: string | null; qualified: string[] }
  | { candidateId: null; reason: string; reference: string | null; qualified: string[] };

/**
 * Picks the replica to promote: reachable, in recovery, with a received
 * LSN, not tagged `nofailover`, and within `maxLagOnFailoverBytes` of the
 * reference (the most advanced of the primary's last known position and the
 * best received LSN); among those the most advanced, ties by priority. With
 * `requestedId` (a manual promotion) only that node, if it qualifies. Pure.
 */
export function chooseCandidate(args: {
  observations: readonly WitnessObservation[];
  nodes: readonly CandidateNode[];
  maxLagOnFailoverBytes: number;
  /** The old primary's last position seen by the monitor, if known. */
  lastPrimaryLsn: string | null;
  requestedId?: string | undefined;
}): CandidateChoice {
  const { observations, nodes, maxLagOnFailoverBytes, lastPrimaryLsn, requestedId } = args;
  const node = (id: string) => nodes.find((n) => n.id === id);
  const eligible = observations.filter((o) => {
    const spec = node(o.nodeId);
    return spec !== undefined && o.reachable && o.inRecovery === true && o.receiveLsn !== null && !spec.tags.includes('nofailover');
  });
  const best = eligible.reduce<string | null>((max, o) => (max === null || compareLsn(o.receiveLsn!, max) > 0 ? o.receiveLsn! : max), null);
  const reference = lastPrimaryLsn && best && compareLsn(lastPrimaryLsn, best) > 0 ? lastPrimaryLsn : best;
  const qualified = eligible
    .filter((o) => reference === null || lsnDiffBytes(reference, o.receiveLsn!) <= maxLagOnFailoverBytes)
    .sort((a, b) => compareLsn(b.receiveLsn!, a.receiveLsn!) || node(a.nodeId)!.priority - node(b.nodeId)!.priority)
    .map((o) => o.nodeId);
  const chosen = requestedId ? qualified.find((id) => id === requestedId) : qualified[0];
  if (chosen) return { candidateId: chosen, reference, qualified };
  const reason = requestedId
    ? `no-candidate: ${requestedId} does not qualify (unreachable, not a replica, nofailover, or more than ${maxLagOnFailoverBytes} bytes behind)`
    : `no-candidate: no reachable replica within ${maxLagOnFailoverBytes} bytes of ${reference ?? 'the primary'}`;
  return { candidateId: null, reason, reference, qualified };
}
