import { planSlotDrops } from '@pgreplica/decisions';
import type { SlotCleanupJob } from '@pgreplica/protocol';
import { currentAuthority } from '../authority.js';
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

// inactive_since exists from PostgreSQL 17; read through to_jsonb so older servers answer null.
const SLOTS = `
SELECT slot_name, active, wal_status,
       pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 AS retained_bytes,
       (to_jsonb(s) ->> 'inactive_since')::timestamptz AS inactive_since
  FROM pg_replication_slots s WHERE slot_type = 'physical'`;
const TOTAL_RETAINED = `SELECT coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), min(restart_lsn)), 0)::float8 AS bytes FROM pg_replication_slots`;

/**
 * Drops inactive physical slots that retain more WAL than the worker's
 * `slots.maxRetainedBytes`, after re-checking on the primary now. Never an
 * active slot, never one inactive for less than `slots.inactiveGraceMs` by
 * the longest trustworthy evidence (PostgreSQL 17's `inactive_since`, the
 * monitor's observation in the job, the worker's own first sighting kept in
 * Redis), never the slot of a configured replica that is reachable. Dry run
 * reports and drops nothing.
 */
export async function slotCleanup(job: SlotCleanupJob, ctx: JobContext): Promise<SlotCleanupResult> {
  const probes = await ctx.cluster.probeAll();
  const record = await currentAuthority(ctx, probes);
  const primaryId = record.primaryId;
  const now = Date.now();
  const slots = await ctx.cluster.query<{ slot_name: string; active: boolean; wal_status: string | null; retained_bytes: number | null; inactive_since: Date | null }>(primaryId, SLOTS);
  const [before] = await ctx.cluster.query<{ bytes: number }>(primaryId, TOTAL_RETAINED);
  const firstSeen = await ctx.ledger.observeSlots(slots.map((s) => ({ slotName: s.slot_name, active: s.active })), now);
  const monitorSince = job.inactiveSince ? Date.parse(job.inactiveSince) : null;
  const { drop, kept } = planSlotDrops({
    slots: slots.map((s) => {
      const evidence = [s.inactive_since?.getTime() ?? null, s.slot_name === job.slotName ? monitorSince : null, firstSeen.get(s.slot_name) ?? null].filter((t): t is number => t !== null);
      return { slotName: s.slot_name, active: s.active, retainedBytes: s.retained_bytes, inactiveForMs: evidence.length > 0 ? now - Math.min(...evidence) : null };
    }),
    policy: ctx.config.slots,
    reachableReplicaSlots: new Set(ctx.cluster.nodes.filter((n) => probes.get(n.id)?.ok).map((n) => n.slotName)),
    onlySlot: job.slotName,
  });
  const dropped: string[] = [];
  for (const name of drop) {
    if (job.dryRun) continue;
    checkAbort(ctx, `dropping slot ${name}`);
    await ctx.cluster.query(primaryId, 'SELECT pg_drop_replication_slot($1)', [name]);
    ctx.changed.push(`dropped replication slot ${name} on ${primaryId}`);
    await ctx.ledger.forgetSlot(name);
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
