import { z } from 'zod';
import { isoTimeSchema as isoTime, lsnSchema as lsn } from './lsn.js';
import { NODE_REASONS, NODE_STATUSES, nodeStateSchema, topologySchema } from './node.js';

/** Version of the event envelope. Receivers drop events of any other version. */
export const PROTOCOL_VERSION = 1;

const nodeId = z.string().min(1);

/** Fields every event carries, whatever its type. */
const envelope = {
  v: z.literal(PROTOCOL_VERSION),
  cluster: z.string().min(1),
  /** Leadership term of the monitor (or worker) that published it. */
  term: z.number().int().min(0),
  /** Grows by one per event within a term. */
  seq: z.number().int().min(0),
  /** Primary epoch the publisher knew when publishing. */
  epoch: z.number().int().min(0),
  /** Publication time. */
  at: isoTime,
  /** Hex HMAC-SHA256 over the canonical JSON of the event without `sig`. */
  sig: z.string().regex(/^[0-9a-f]{64}$/).optional(),
};

/** Durations of each phase of a failover or switchover, in milliseconds. */
const phasesMs = z.partialRecord(z.enum(['detect', 'decide', 'fence', 'catchup', 'promote', 'publish', 'repoint', 'total']), z.number().min(0));

/** Inputs a decision was made on (LSNs, lags, what each observer saw), kept for audit. */
const inputs = z.record(z.string(), z.unknown());

const snapshotEvent = z.strictObject({ ...envelope, type: z.literal('snapshot'), topology: topologySchema });
const nodeStatusEvent = z.strictObject({
  ...envelope,
  type: z.literal('node.status'),
  nodeId,
  from: z.enum(NODE_STATUSES),
  to: z.enum(NODE_STATUSES),
  reason: z.enum(NODE_REASONS),
  detail: z.string().optional(),
  node: nodeStateSchema,
});
const primaryChangedEvent = z.strictObject({
  ...envelope,
  type: z.literal('primary.changed'),
  fromId: nodeId.nullable(),
  toId: nodeId,
  cause: z.enum(['failover', 'switchover', 'manual']),
});
const switchoverStartedEvent = z.strictObject({
  ...envelope,
  type: z.literal('switchover.started'),
  fromId: nodeId,
  toId: nodeId,
  maxWritePauseMs: z.number().int().min(0),
});
const switchoverFinishedEvent = z.strictObject({
  ...envelope,
  type: z.literal('switchover.finished'),
  fromId: nodeId,
  toId: nodeId,
  ok: z.boolean(),
  writePauseMs: z.number().min(0),
  detail: z.string().optional(),
  phasesMs: phasesMs.optional(),
});
const failoverStartedEvent = z.strictObject({
  ...envelope,
  type: z.literal('failover.started'),
  failedPrimaryId: nodeId,
  candidateId: nodeId.optional(),
  automatic: z.boolean(),
});
const failoverSuppressedEvent = z.strictObject({
  ...envelope,
  type: z.literal('failover.suppressed'),
  failedPrimaryId: nodeId,
  reason: z.enum(['replica-still-streaming', 'primary-reachable', 'policy-manual', 'paused', 'flap-window', 'no-quorum']),
  detail: z.string().optional(),
  inputs,
});
const failoverFinishedEvent = z.strictObject({
  ...envelope,
  type: z.literal('failover.finished'),
  fromId: nodeId,
  toId: nodeId,
  /** Last LSN seen on the old primary. */
  lastOldPrimaryLsn: lsn.nullable(),
  /** LSN at which the new primary started its timeline. */
  newPrimaryStartLsn: lsn,
  /** Bytes between the two: acknowledged writes that may be lost under async replication. */
  lostBytes: z.number().min(0).nullable(),
  phasesMs,
  inputs,
});
const failoverAbortedEvent = z.strictObject({
  ...envelope,
  type: z.literal('failover.aborted'),
  failedPrimaryId: nodeId,
  reason: z.string().min(1),
  inputs,
});
const slotDroppedEvent = z.strictObject({
  ...envelope,
  type: z.literal('slot.dropped'),
  slotName: z.string().min(1),
  dryRun: z.boolean(),
  retainedBytesBefore: z.number().min(0).nullable(),
  retainedBytesAfter: z.number().min(0).nullable(),
});
const remediationFailedEvent = z.strictObject({
  ...envelope,
  type: z.literal('remediation.failed'),
  job: z.string().min(1),
  jobId: z.string().min(1),
  error: z.string(),
  /** Exactly what the job changed before it failed; empty when nothing. */
  changed: z.array(z.string()),
});

const nodeRejoinedEvent = z.strictObject({
  ...envelope,
  type: z.literal('node.rejoined'),
  nodeId,
  primaryId: nodeId,
  /** How it rejoined: rewound (pg_rewind) or cloned again. */
  method: z.enum(['rewind', 'clone', 'already-following']),
  /**
   * WAL it had written past where the new primary's timeline forked — writes
   * no replica received, now off the cluster's history. Kept where the hook
   * saved it (never silently dropped); null when there was none.
   */
  lostTail: z
    .strictObject({
      fromLsn: lsn,
      toLsn: lsn,
      bytes: z.number().min(0),
      /** Counts of WAL records by kind (e.g. `Heap/INSERT`) and relation, from pg_waldump. */
      records: z.record(z.string(), z.number().int().min(0)),
      savedTo: z.string().nullable(),
    })
    .nullable(),
});

/** Schema of any bus event, discriminated by `type`. */
export const busEventSchema = z.discriminatedUnion('type', [
  snapshotEvent,
  nodeStatusEvent,
  primaryChangedEvent,
  switchoverStartedEvent,
  switchoverFinishedEvent,
  failoverStartedEvent,
  failoverSuppressedEvent,
  failoverFinishedEvent,
  failoverAbortedEvent,
  slotDroppedEvent,
  remediationFailedEvent,
  nodeRejoinedEvent,
]);

/** Any event on the bus. */
export type BusEvent = z.infer<typeof busEventSchema>;
/** The `type` of a bus event. */
export type BusEventType = BusEvent['type'];
/** The event of one type. */
export type BusEventOf<T extends BusEventType> = Extract<BusEvent, { type: T }>;
/** Every event type, for exhaustive handling. */
export const BUS_EVENT_TYPES = busEventSchema.options.map((o) => o.shape.type.value) as readonly BusEventType[];

/** Envelope fields a publisher fills in; the rest is the payload. */
export type EnvelopeFields = 'v' | 'cluster' | 'term' | 'seq' | 'epoch' | 'at' | 'sig';
/** The payload of an event of type `T` (what the publisher supplies besides the envelope). */
export type BusEventPayload<T extends BusEventType> = Omit<BusEventOf<T>, EnvelopeFields | 'type'>;

/** Position of an event in the total order of the bus. */
export interface EventPosition {
  term: number;
  seq: number;
}

/** Whether `candidate` comes after `current` in `(term, seq)` order. */
export function isNewerPosition(candidate: EventPosition, current: EventPosition | null): boolean {
  if (current === null) return true;
  return candidate.term > current.term || (candidate.term === current.term && candidate.seq > current.seq);
}

/**
 * Whether applying `candidate` after `current` leaves a gap (events missed),
 * in which case the receiver must catch up from the stream: a seq skipped
 * within a term, or a new term whose first events it did not see (every term
 * starts at seq 1).
 */
export function isGap(candidate: EventPosition, current: EventPosition | null): boolean {
  if (current === null) return false;
  if (candidate.term === current.term) return candidate.seq > current.seq + 1;
  return candidate.term > current.term && candidate.seq > 1;
}
