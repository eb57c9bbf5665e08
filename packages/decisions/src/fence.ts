import type { PrimaryRecord } from '@pgreplica/protocol';

/** Whether to fence a node, and why not when not. */
export type FenceVerdict = { fence: true } | { fence: false; reason: string };

/**
 * Decides whether a node reported writable but not the primary of the
 * epoch must be fenced, on the worker's own probe: not when it is the
 * primary of the current record, not when it cannot be reached, not when it
 * is (back) in recovery. Pure.
 */
export function decideFence(args: {
  nodeId: string;
  record: PrimaryRecord | null;
  /** The worker's probe of the node: null when it did not answer. */
  probe: { inRecovery: boolean } | null;
}): FenceVerdict {
  const { nodeId, record, probe } = args;
  if (record?.primaryId === nodeId) return { fence: false, reason: 'it is the primary of the current epoch' };
  if (probe === null) return { fence: false, reason: 'not reachable' };
  if (probe.inRecovery) return { fence: false, reason: 'in recovery (a replica)' };
  return { fence: true };
}
