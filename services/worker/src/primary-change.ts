import type { HeldLock, PromotionProgress } from '@pgreplica/bus';
import { EPOCH_WRITE_QUERY, PGREPLICA_SCHEMA_SQL, type ProbeResult } from '@pgreplica/probe';
import type { PrimaryRecord } from '@pgreplica/protocol';
import { UnrecoverableError } from 'bullmq';
import { sampleOf } from './cluster-access.js';
import type { JobContext } from './context.js';
import { repoint, type RepointOutcome } from './repoint.js';

/**
 * The steps a failover and a switchover share: promote the recorded
 * candidate, record the new epoch in its database, announce it on the bus
 * (fenced by the change lock), repoint the rest. Each one records what it
 * changed in `ctx.changed`.
 */

/** `pg_promote(true, 60)` on a replica, then checks it left recovery. */
export async function promoteNode(ctx: JobContext, nodeId: string): Promise<void> {
  const [promoted] = await ctx.cluster.query<{ ok: boolean }>(nodeId, 'SELECT pg_promote(true, 60) AS ok');
  if (!promoted?.ok) throw new Error(`pg_promote on ${nodeId} did not finish within 60 s`);
  ctx.changed.push(`promoted ${nodeId}`);
  const [state] = await ctx.cluster.query<{ recovery: boolean }>(nodeId, 'SELECT pg_is_in_recovery() AS recovery');
  if (state?.recovery !== false) throw new Error(`${nodeId} is still in recovery after pg_promote`);
}

/**
 * Writes the epoch record into the new primary's own database (before the
 * bus hears of it): a deposed primary keeps a lower epoch, so routers and
 * monitors can tell them apart even when Redis forgets. Idempotent; refuses
 * when that epoch is already recorded for another node.
 */
export async function recordEpochInDatabase(ctx: JobContext, record: PrimaryRecord): Promise<void> {
  await ctx.cluster.withClient(record.primaryId, async (client) => {
    // Created by an admin beforehand is fine (42501: not ours to alter); the write below still needs its rights.
    await client.query(PGREPLICA_SCHEMA_SQL).catch((err: unknown) => {
      if ((err as { code?: string }).code !== '42501') throw err;
    });
    const params = [record.epoch, record.primaryId, record.systemIdentifier, record.cause, record.previousPrimaryId ?? null, record.at, null];
    const { rows } = await client.query<{ primary_id: string }>(EPOCH_WRITE_QUERY, params);
    const stored = rows[0]?.primary_id;
    if (stored !== record.primaryId) throw new UnrecoverableError(`epoch ${record.epoch} is already recorded for ${stored} in ${record.primaryId}'s database`);
  });
  ctx.changed.push(`recorded epoch ${record.epoch} (primary ${record.primaryId}) in ${record.primaryId}'s database`);
}

/**
 * Records how far the promotion of `epoch` got, fenced by the change lock: a
 * run that stalled past the lock's TTL (another run took over meanwhile)
 * must not name a candidate, nor promote one, behind the new holder's back.
 * @throws when the lock was lost or another candidate is recorded for the epoch
 */
export async function recordProgress(ctx: JobContext, epoch: number, progress: PromotionProgress, lock: HeldLock): Promise<void> {
  const outcome = await ctx.ledger.recordProgress(epoch, progress, lock.value);
  if (outcome === 'lost-lock') throw new Error(`lost the change lock before recording ${progress.candidateId} (${progress.phase}) for epoch ${epoch}; the job that holds it now finishes`);
  if (outcome === 'other-candidate') throw new Error(`another candidate is recorded for epoch ${epoch}: not promoting ${progress.candidateId}`);
}

/** What {@link completePromotion} needs: the epoch being ended and the promotion's recorded progress. */
export interface PromotionPlan {
  /** The authority of the epoch being ended. */
  from: PrimaryRecord;
  candidateId: string;
  cause: Exclude<PrimaryRecord['cause'], 'bootstrap'>;
  lock: HeldLock;
}

/**
 * From "candidate recorded" to "new epoch announced", each step idempotent so
 * a re-delivered job resumes wherever the last run stopped: promote the
 * candidate if it is still in recovery (only the recorded candidate, never
 * another), record the new epoch in its database, announce it on the bus
 * while still holding the change lock, publish `primary.changed`. Returns the
 * new record, or null when another run already announced this epoch for
 * another node.
 * @throws when the lock was lost (a newer holder finishes the job)
 */
export async function completePromotion(
  ctx: JobContext,
  plan: PromotionPlan,
  progress: PromotionProgress,
): Promise<{ record: PrimaryRecord; startLsn: string | null; promoteMs: number; publishMs: number } | null> {
  const started = Date.now();
  const { from, candidateId, cause, lock } = plan;
  const [state] = await ctx.cluster.query<{ recovery: boolean; sysid: string; lsn: string | null }>(
    candidateId,
    'SELECT pg_is_in_recovery() AS recovery, (SELECT system_identifier::text FROM pg_control_system()) AS sysid, pg_last_wal_replay_lsn()::text AS lsn',
  );
  if (!state) throw new Error(`cannot read the state of ${candidateId}`);
  let startLsn = progress.startLsn;
  if (state.recovery) {
    startLsn = state.lsn ?? undefined;
    // The last check before the one step that cannot be undone: a run that stalled past the
    // lock's TTL stops here instead of promoting a node another run may not have chosen.
    if (!(await lock.extend())) throw new Error(`lost the change lock before promoting ${candidateId}; the job that holds it now finishes`);
    await promoteNode(ctx, candidateId);
  }
  await clearDemotionSettings(ctx, candidateId);
  const promoteMs = Date.now() - started;
  const next: PrimaryRecord = {
    epoch: from.epoch + 1,
    primaryId: candidateId,
    systemIdentifier: state.sysid,
    at: new Date().toISOString(),
    cause,
    previousPrimaryId: from.primaryId,
  };
  await recordProgress(ctx, from.epoch, { candidateId, phase: 'promoted', ...(startLsn ? { startLsn } : {}) }, lock);
  await recordEpochInDatabase(ctx, next);
  const outcome = await ctx.authority.announce(next, lock.value);
  if (outcome === 'lost-lock') throw new Error('lost the change lock before announcing the new epoch; the job that holds it now finishes');
  if (outcome === 'epoch-moved') {
    // A monitor may have restored the bus from the database first: same epoch, same node, fine.
    const now = await ctx.authority.primaryRecord();
    if (now?.epoch !== next.epoch || now.primaryId !== candidateId) return null;
  } else {
    ctx.changed.push(`primary record: epoch ${next.epoch}, primary ${candidateId}`);
  }
  await ctx.publish('primary.changed', { fromId: from.primaryId, toId: candidateId, cause }, next.epoch);
  return { record: next, startLsn: startLsn ?? null, promoteMs, publishMs: Date.now() - started - promoteMs };
}

/**
 * A new primary must take writes: settings a switchover or a soft fence may
 * have left in its postgresql.auto.conf while it was a primary before
 * (`default_transaction_read_only`, `synchronous_standby_names` naming a
 * standby that is gone) are reset. Idempotent.
 */
export async function clearDemotionSettings(ctx: JobContext, nodeId: string): Promise<void> {
  await ctx.cluster.withClient(nodeId, async (client) => {
    const { rows } = await client.query<{ ro: string; sync: string }>(
      "SELECT current_setting('default_transaction_read_only') AS ro, current_setting('synchronous_standby_names') AS sync",
    );
    if (rows[0]?.ro === 'off' && rows[0]?.sync === '') return;
    await client.query('ALTER SYSTEM RESET default_transaction_read_only');
    await client.query('ALTER SYSTEM RESET synchronous_standby_names');
    await client.query('SELECT pg_reload_conf()');
    ctx.changed.push(`reset default_transaction_read_only and synchronous_standby_names on ${nodeId}`);
  });
}

/** Repoints every replica that answered `probes` (but the new and the old primary) to `newPrimaryId`, each waited for up to `waitMs`. */
export async function repointReplicas(
  ctx: JobContext,
  probes: ReadonlyMap<string, ProbeResult>,
  newPrimaryId: string,
  oldPrimaryId: string,
  waitMs: number = ctx.config.worker.repointTimeoutMs,
): Promise<RepointOutcome[]> {
  const newPrimary = ctx.cluster.node(newPrimaryId);
  const outcomes: RepointOutcome[] = [];
  for (const node of ctx.cluster.nodes) {
    if (node.id === newPrimaryId || node.id === oldPrimaryId || !sampleOf(probes.get(node.id))?.inRecovery) continue;
    outcomes.push(await repoint(node, newPrimary, ctx, waitMs).catch((err: unknown) => ({ nodeId: node.id, streaming: false, detail: (err as Error).message })));
  }
  return outcomes;
}
