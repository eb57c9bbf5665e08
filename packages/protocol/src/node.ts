import { z } from 'zod';
import { isoTimeSchema as isoTime, lsnSchema as lsn } from './lsn.js';

/** What a node is, as last measured. `unknown` until the first successful probe. */
export const NODE_ROLES = ['primary', 'replica', 'unknown'] as const;
/** @see NODE_ROLES */
export type NodeRole = (typeof NODE_ROLES)[number];

/** Health verdict of a node, decided by the monitor only. */
export const NODE_STATUSES = ['healthy', 'degraded', 'unhealthy', 'unknown'] as const;
/** @see NODE_STATUSES */
export type NodeStatus = (typeof NODE_STATUSES)[number];

/** Why a node has the status it has. `ok` goes with `healthy`. */
export const NODE_REASONS = [
  'ok',
  'not-probed',
  'unreachable',
  'timeout',
  'lagging',
  'replay-stalled',
  'replay-paused',
  'wal-receiver-down',
  'timeline-fork',
  'second-primary',
  'stale-primary',
  'system-id-mismatch',
  'no-standby-streaming',
  'stale',
  'fenced',
  'read-only',
] as const;
/** @see NODE_REASONS */
export type NodeReason = (typeof NODE_REASONS)[number];

/** Operator tags: `nofailover` never becomes primary automatically, `noloadbalance` takes no routed reads. */
export const NODE_TAGS = ['nofailover', 'noloadbalance'] as const;
/** @see NODE_TAGS */
export type NodeTag = (typeof NODE_TAGS)[number];

/** Node ids appear in keys, URLs and metric labels. */
export const NODE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** What PostgreSQL accepts as a replication slot name: lower-case letters, digits and underscores, at most 63. */
export const SLOT_NAME_PATTERN = /^[a-z0-9_]{1,63}$/;

/**
 * The replication slot name a node gets unless configured: its id in lower
 * case with every character a slot name cannot hold replaced by "_"
 * (`DB.East` → `db_east`, `pg-1` → `pg_1`).
 */
export function defaultSlotName(nodeId: string): string {
  return nodeId.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 63);
}


/** Schema of one node as it travels on the bus. */
export const nodeStateSchema = z.strictObject({
  id: z.string().regex(NODE_ID_PATTERN, 'must be 1-63 letters, digits, "_", "." or "-"'),
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  role: z.enum(NODE_ROLES),
  status: z.enum(NODE_STATUSES),
  reason: z.enum(NODE_REASONS),
  /** Lower wins. */
  priority: z.number().int(),
  weight: z.number().min(0),
  zone: z.string().optional(),
  tags: z.array(z.enum(NODE_TAGS)),
  /** Replay distance behind the primary's current LSN, measured in the same probe round. */
  lagBytes: z.number().nullable(),
  /** Age of the newest replicated heartbeat on this node. */
  lagMs: z.number().nullable(),
  /** Replayed position; for a primary, its current WAL position (last seen). */
  replayLsn: lsn.nullable(),
  /** Received position; for a primary, its current WAL position (last seen). */
  receiveLsn: lsn.nullable(),
  timeline: z.number().int().nullable(),
  lastCheckAt: isoTime.nullable(),
  /** When the status last changed. */
  since: isoTime,
  consecutiveFailures: z.number().int().min(0),
});

/** One PostgreSQL node of the cluster, as measured and judged by the monitor. */
export type NodeState = z.infer<typeof nodeStateSchema>;

/** Schema of a full topology snapshot. */
export const topologySchema = z.strictObject({
  cluster: z.string(),
  /** Bumped on each change of primary. */
  epoch: z.number().int().min(0),
  /** Id of the primary of this epoch, or null when none is known. */
  primaryId: z.string().nullable(),
  /** `pg_control_system().system_identifier` as a decimal string (it exceeds 2^53). */
  systemIdentifier: z.string().regex(/^\d+$/).nullable(),
  nodes: z.array(nodeStateSchema),
  /** When the monitor produced this snapshot. */
  observedAt: isoTime,
  /**
   * The monitor publishes a snapshot at least this often: routers derive how
   * long silence may last before they call the bus stale (several heartbeats).
   */
  heartbeatMs: z.number().int().positive().optional(),
});

/** The whole cluster as the monitor last saw it. */
export type Topology = z.infer<typeof topologySchema>;
