import { planSlotDrops } from '@pgreplica/decisions';
import type { SlotCleanupJob } from '@pgreplica/protocol';
import { UnrecoverableError } from 'bullmq';
import { checkAbort, type JobContext } from '../context.js';

/** What a slot-cleanup job did. */
export interface SlotCleanupResult {
  primaryId: string;
  dropped: string[];
  kept: { slotName: string; why: string }[];
  dryRun: boolean;
  /** WAL retained by all slots before and after, in bytes. */
  retainedBytesBefore: number | null;
  retainedBytesAfter: number | null;
}

const SLOTS = `
SELECT slot_name, active, wal_status,
       pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 AS retained_bytes
  FROM pg_replication_slots WHERE slot_type = 'physical'`;
const TOTAL_RETAINED = `SELECT coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), min(restart_lsn)), 0)::float8 AS bytes FROM pg_replication_slots`;

/**
 * Drops inactive physical slots that retain more WAL than allowed, after
 * re-checking on the primary now: never an active slot, never one at or
 * under the limit, never the slot of a configured replica that is reachable
 * (it is coming back). Dry run reports and drops nothing.
 */
export async function slotCleanup(job: SlotCleanupJob, ctx: JobContext): Promise<SlotCleanupResult> {
  const record = await ctx.authority.primaryRecord();
  if (!record) throw new UnrecoverableError('no primary record on the bus: nothing to clean up against');
  const primaryId = record.primaryId;
  const probes = await ctx.cluster.probeAll();
  const slots = await ctx.cluster.query<{ slot_name: string; active: boolean; wal_status: string | null; retained_bytes: number | null }>(primaryId, SLOTS);
  const [before] = await ctx.cluster.query<{ bytes: number }>(primaryId, TOTAL_RETAINED);
  const { drop, kept } = planSlotDrops({
    slots: slots.map((s) => ({ slotName: s.slot_name, active: s.active, retainedBytes: s.retained_bytes })),
    policy: { maxRetainedBytes: job.maxRetainedBytes },
    reachableReplicaSlots: new Set(ctx.cluster.nodes.filter((n) => probes.get(n.id)?.ok).map((n) => n.id)),
    onlySlot: job.slotName,
  });
  const dropped: string[] = [];
  for (const name of drop) {
    if (job.dryRun) continue;
    checkAbort(ctx, `dropping slot ${name}`);
    await ctx.cluster.query(primaryId, 'SELECT pg_drop_replication_slot($1)', [name]);
    ctx.changed.push(`dropped replication slot ${name} on ${primaryId}`);
    dropped.push(name);
  }
  const [after] = await ctx.cluster.query<{ bytes: number }>(primaryId, TOTAL_RETAINED);
  const result: SlotCleanupResult = {
    primaryId,
    dropped: job.dryRun ? drop : dropped,
    kept,
    dryRun: job.dryRun,
    retainedBytesBefore: before?.bytes ?? null,
    retainedBytesAfter: after?.bytes ?? null,
  };
  for (const name of result.dropped) {
    await ctx.publish('slot.dropped', { slotName: name, dryRun: job.dryRun, retainedBytesBefore: result.retainedBytesBefore, retainedBytesAfter: result.retainedBytesAfter }, record.epoch);
  }
  ctx.logger.info({ ...result }, job.dryRun ? 'slot cleanup (dry run)' : 'slot cleanup done');
  return result;
}
