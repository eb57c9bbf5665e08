import { z } from 'zod';
import { jobAuthSchema } from './job-auth.js';
import { isoTimeSchema } from './lsn.js';

/** Name of the BullMQ queue that carries remediation jobs (prefixed with the cluster's hash tag). */
export const REMEDIATION_QUEUE = 'remediation';

/** Job names the worker understands. */
export const JOB_NAMES = ['slot-cleanup', 'promote', 'switchover', 'repoint', 'fence', 'sync-standbys', 'rejoin'] as const;
/** @see JOB_NAMES */
export type JobName = (typeof JOB_NAMES)[number];

/**
 * Payload of `slot-cleanup`: drop inactive slots that retain too much WAL.
 * A trigger only: the limits are the worker's own configuration (`slots`).
 */
export const slotCleanupJobSchema = z.strictObject({
  cluster: z.string(),
  /** The enqueuer's proof (with a bus key): see {@link jobAuthSchema}. */
  auth: jobAuthSchema.optional(),
  epoch: z.number().int().min(0),
  /** Only this slot; all candidates when absent. */
  slotName: z.string().optional(),
  /** Since when the monitor has seen the slot inactive (evidence for the grace period). */
  inactiveSince: isoTimeSchema.optional(),
  dryRun: z.boolean(),
  reason: z.string(),
});
/** @see slotCleanupJobSchema */
export type SlotCleanupJob = z.infer<typeof slotCleanupJobSchema>;

/**
 * Payload of `promote`: fail over from a dead primary. A trigger only: the
 * lag limit, pause and flap window are the worker's own configuration.
 */
export const promoteJobSchema = z.strictObject({
  cluster: z.string(),
  /** The enqueuer's proof (with a bus key): see {@link jobAuthSchema}. */
  auth: jobAuthSchema.optional(),
  /** The epoch whose primary failed; one promotion per epoch. */
  epoch: z.number().int().min(0),
  failedPrimaryId: z.string(),
  /** A specific candidate (manual promotion); the best one when absent. */
  candidateId: z.string().optional(),
  automatic: z.boolean(),
  dryRun: z.boolean(),
  detectedAt: isoTimeSchema,
});
/** @see promoteJobSchema */
export type PromoteJob = z.infer<typeof promoteJobSchema>;

/** Payload of `switchover`: planned, lossless change of primary. */
export const switchoverJobSchema = z.strictObject({
  cluster: z.string(),
  /** The enqueuer's proof (with a bus key): see {@link jobAuthSchema}. */
  auth: jobAuthSchema.optional(),
  epoch: z.number().int().min(0),
  candidateId: z.string(),
  maxWritePauseMs: z.number().int().min(0),
});
/** @see switchoverJobSchema */
export type SwitchoverJob = z.infer<typeof switchoverJobSchema>;

/** Payload of `repoint`: make a replica stream from the current primary. */
export const repointJobSchema = z.strictObject({
  cluster: z.string(),
  /** The enqueuer's proof (with a bus key): see {@link jobAuthSchema}. */
  auth: jobAuthSchema.optional(),
  epoch: z.number().int().min(0),
  nodeId: z.string(),
  primaryId: z.string(),
});
/** @see repointJobSchema */
export type RepointJob = z.infer<typeof repointJobSchema>;

/** Payload of `fence`: make a writable node that is not the primary of the epoch refuse writes. */
export const fenceJobSchema = z.strictObject({
  cluster: z.string(),
  /** The enqueuer's proof (with a bus key): see {@link jobAuthSchema}. */
  auth: jobAuthSchema.optional(),
  epoch: z.number().int().min(0),
  nodeId: z.string(),
  reason: z.string(),
});
/** @see fenceJobSchema */
export type FenceJob = z.infer<typeof fenceJobSchema>;

/**
 * Payload of `sync-standbys` (`failover.durability: synchronous`): make the
 * primary's synchronous standbys the replicas that stream from it now.
 */
export const syncStandbysJobSchema = z.strictObject({
  cluster: z.string(),
  /** The enqueuer's proof (with a bus key): see {@link jobAuthSchema}. */
  auth: jobAuthSchema.optional(),
  epoch: z.number().int().min(0),
  reason: z.string(),
});
/** @see syncStandbysJobSchema */
export type SyncStandbysJob = z.infer<typeof syncStandbysJobSchema>;

/**
 * Payload of `rejoin`: make a node that is not the primary of the epoch (a
 * deposed primary, fenced or not; a replica on a forked timeline) stream from
 * the primary again, through the worker's rejoin hook.
 */
export const rejoinJobSchema = z.strictObject({
  cluster: z.string(),
  /** The enqueuer's proof (with a bus key): see {@link jobAuthSchema}. */
  auth: jobAuthSchema.optional(),
  epoch: z.number().int().min(0),
  nodeId: z.string(),
  reason: z.string(),
});
/** @see rejoinJobSchema */
export type RejoinJob = z.infer<typeof rejoinJobSchema>;

/** Payload type of each job name. */
export interface JobPayloadMap {
  rejoin: RejoinJob;
  'sync-standbys': SyncStandbysJob;
  'slot-cleanup': SlotCleanupJob;
  promote: PromoteJob;
  switchover: SwitchoverJob;
  repoint: RepointJob;
  fence: FenceJob;
}

/** Schema of each job name's payload. */
export const JOB_SCHEMAS = {
  'slot-cleanup': slotCleanupJobSchema,
  promote: promoteJobSchema,
  switchover: switchoverJobSchema,
  repoint: repointJobSchema,
  fence: fenceJobSchema,
  'sync-standbys': syncStandbysJobSchema,
  rejoin: rejoinJobSchema,
} as const satisfies { [K in JobName]: z.ZodType<JobPayloadMap[K]> };

/**
 * Deterministic BullMQ job id, so a duplicate enqueue is a no-op:
 * one promotion per epoch, one cleanup per slot and epoch.
 */
export function jobId(name: JobName, payload: { cluster: string; epoch: number; slotName?: string; nodeId?: string }): string {
  const parts = [name, payload.cluster, `e${payload.epoch}`];
  if (payload.slotName !== undefined) parts.push(payload.slotName);
  if (payload.nodeId !== undefined) parts.push(payload.nodeId);
  // BullMQ forbids ":" in custom ids.
  return parts.join('.');
}
