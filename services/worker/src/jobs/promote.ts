import type { HeldLock } from '@pgreplica/bus';
import { chooseCandidate, decidePromotion, observeWitnesses, syncCandidates, type WitnessObservation } from '@pgreplica/decisions';
import type { ProbeResult } from '@pgreplica/probe';
import { lsnDiffBytes, type NodeState, type PrimaryRecord, type PromoteJob, parseEvent } from '@pgreplica/protocol';
import { UnrecoverableError } from 'bullmq';
import { currentAuthority } from '../authority.js';
import { sampleOf } from '../cluster-access.js';
import { CHANGE_LOCK_TTL_MS, checkAbort, type JobContext, waitUntil } from '../context.js';
import { fenceNode } from '../fencing.js';
import { completePromotion, recordProgress, repointReplicas } from '../primary-change.js';
import type { RepointOutcome } from '../repoint.js';
import { applySyncStandbys } from './sync-standbys.js';

/** What a promote job did. */
export interface PromoteResult {
  outcome: 'promoted' | 'already-done' | 'aborted' | 'suppressed' | 'dry-run';
  epoch: number;
  primaryId: string | null;
  reason?: string;
  lostBytes?: number | null;
  repointed?: RepointOutcome[];
  phasesMs?: Record<string, number>;
}

/** The nodes of the monitor's last snapshot (verified): their last known positions. */
async function lastSnapshotNodes(ctx: JobContext): Promise<NodeState[]> {
  const raw = await ctx.authority.snapshotRaw();
  if (!raw) return [];
  const parsed = parseEvent(raw, { cluster: ctx.config.cluster, key: ctx.config.busKey });
  return parsed.ok && parsed.event.type === 'snapshot' ? parsed.event.topology.nodes : [];
}

/** Why an automatic failover may not run now: paused, or inside the anti-flapping window. */
async function suppression(ctx: JobContext): Promise<{ reason: 'paused' | 'flap-window'; detail: string } | null> {
  if (await ctx.authority.paused()) return { reason: 'paused', detail: 'automatic remediation is paused (pgreplica resume)' };
  const last = await ctx.ledger.lastFailoverAt();
  const windowMs = ctx.config.worker.flapWindowMs;
  if (last !== null && Date.now() - last < windowMs) {
    return { reason: 'flap-window', detail: `an automatic failover ran ${Date.now() - last} ms ago; at most one per ${windowMs} ms (promote by hand to override)` };
  }
  return null;
}

/** The witnesses of the old primary among the other nodes, by the one rule the monitor uses too. */
function witnesses(ctx: JobContext, probes: ReadonlyMap<string, ProbeResult>, oldPrimaryId: string): WitnessObservation[] {
  const others = ctx.cluster.nodes.filter((n) => n.id !== oldPrimaryId);
  return observeWitnesses(
    others.map((n) => ({ nodeId: n.id, reachable: probes.get(n.id)?.ok === true, sample: sampleOf(probes.get(n.id)) })),
    {
      otherNodeAddresses: new Set(others.map((n) => `${n.host}:${n.port}`)),
      witnessFreshMs: ctx.config.failover.witnessFreshMs,
      silenceMarginMs: ctx.config.monitor.probeIntervalMs,
      nowMs: Date.now(),
    },
  );
}

/**
 * Failover. Runs only if, checked now by the worker itself, the primary of
 * the job's epoch does not take writes and no reachable replica still
 * streams from it (witnesses). Picks the most advanced received LSN within
 * `failover.maxLagOnFailoverBytes` (ties by priority, never `nofailover`),
 * records it as the epoch's only candidate, runs the fence hook if any,
 * waits for it to replay what it received, promotes it, records the new
 * epoch in its database, announces it (fenced by the change lock),
 * repoints the other replicas and reports the lost range and phase times.
 * A re-delivered job resumes from the recorded progress: it never promotes
 * a second node for one epoch. Policy (lag limit, flap window, pause) comes
 * from the worker's own configuration.
 */
export async function promote(job: PromoteJob, ctx: JobContext, jobId: string): Promise<PromoteResult> {
  const started = Date.now();
  const phasesMs: Record<string, number> = { detect: Math.max(0, started - Date.parse(job.detectedAt)) };
  const lock = await ctx.changeLock.acquire(jobId, CHANGE_LOCK_TTL_MS);
  // Busy: another job changes the primary; retried with back-off (this job re-checks everything then).
  if (!lock) throw new Error('the cluster change lock is held by another job');
  try {
    const probes = await ctx.cluster.probeAll({ fast: true });
    const record = await currentAuthority(ctx, probes);
    if (record.epoch > job.epoch) {
      return { outcome: 'already-done', epoch: record.epoch, primaryId: record.primaryId, reason: `epoch ${job.epoch} already ended (now ${record.epoch}, primary ${record.primaryId})` };
    }
    if (record.epoch < job.epoch) throw new UnrecoverableError(`job for epoch ${job.epoch}, but the cluster is at epoch ${record.epoch}`);
    if (record.primaryId !== job.failedPrimaryId) throw new UnrecoverableError(`job says ${job.failedPrimaryId} failed, but the primary of epoch ${record.epoch} is ${record.primaryId}`);
    return await runFailover(job, ctx, { record, probes, lock, started, phasesMs });
  } finally {
    await lock.release().catch(() => {});
  }
}

async function runFailover(
  job: PromoteJob,
  ctx: JobContext,
  run: { record: PrimaryRecord; probes: ReadonlyMap<string, ProbeResult>; lock: HeldLock; started: number; phasesMs: Record<string, number> },
): Promise<PromoteResult> {
  const { record, probes, lock, started, phasesMs } = run;
  const oldPrimary = ctx.cluster.node(job.failedPrimaryId);
  const abort = async (reason: string, inputs: Record<string, unknown>): Promise<PromoteResult> => {
    await ctx.publish('failover.aborted', { failedPrimaryId: oldPrimary.id, reason, inputs }, record.epoch);
    ctx.logger.warn({ reason, inputs }, 'failover aborted; nothing changed');
    return { outcome: 'aborted', epoch: record.epoch, primaryId: record.primaryId, reason };
  };
  const primarySample = sampleOf(probes.get(oldPrimary.id));
  const observations = witnesses(ctx, probes, oldPrimary.id);
  const lastSeen = await lastSnapshotNodes(ctx);
  // The old primary's last position the monitor saw (its snapshot keeps it in replayLsn).
  const lastOld = lastSeen.find((n) => n.id === oldPrimary.id)?.replayLsn ?? null;
  let inputs: Record<string, unknown> = { epoch: record.epoch, oldPrimary: oldPrimary.id, lastOldPrimaryLsn: lastOld, primaryReachable: primarySample !== null, observations };
  const verdict = decidePromotion({ primaryWritable: primarySample !== null && !primarySample.inRecovery, witnesses: observations });

  let progress = await ctx.ledger.progress(record.epoch);
  if (progress) {
    // A promotion of this epoch was started: its recorded candidate is the only one that may be promoted.
    const candidate = sampleOf(probes.get(progress.candidateId));
    inputs = { ...inputs, resumed: true, progress };
    if (candidate?.inRecovery === true && !verdict.proceed) {
      // Nothing promoted yet and the old primary is back (or still witnessed): abandon the attempt.
      if ((await ctx.ledger.forgetProgress(record.epoch, lock.value)) === 'lost-lock') throw new Error('lost the change lock before abandoning the promotion');
      return abort(verdict.reason, inputs);
    }
    if (candidate === null) return abort(`candidate-unreachable: ${progress.candidateId}, recorded for epoch ${record.epoch}, does not answer; no other node may be promoted for this epoch`, inputs);
    ctx.logger.warn({ candidateId: progress.candidateId, phase: progress.phase }, 'resuming a promotion');
  } else {
    const suppressed = job.automatic ? await suppression(ctx) : null;
    if (suppressed) {
      await ctx.publish('failover.suppressed', { failedPrimaryId: oldPrimary.id, reason: suppressed.reason, detail: suppressed.detail, inputs: { jobEpoch: job.epoch } }, record.epoch);
      ctx.logger.warn(suppressed, 'failover suppressed');
      return { outcome: 'suppressed', epoch: record.epoch, primaryId: record.primaryId, reason: suppressed.detail };
    }
    if (!verdict.proceed) return abort(verdict.reason, inputs);
    let eligible = observations;
    if (ctx.config.failover.durability === 'synchronous') {
      const sync = syncCandidates({
        record: await ctx.ledger.syncRecord(record.epoch),
        reachable: new Map(observations.filter((o) => o.reachable).map((o) => [o.nodeId, o.receiveLsn])),
        lastKnown: new Map(lastSeen.map((n) => [n.id, n.receiveLsn])),
      });
      inputs = { ...inputs, sync };
      if (!sync.ok) return abort(sync.reason, inputs);
      eligible = observations.filter((o) => sync.allowed.includes(o.nodeId));
    }
    const choice = chooseCandidate({
      observations: eligible,
      nodes: ctx.cluster.nodes,
      maxLagOnFailoverBytes: ctx.config.failover.maxLagOnFailoverBytes,
      lastPrimaryLsn: lastOld,
      requestedId: job.candidateId,
    });
    inputs = { ...inputs, reference: choice.reference, qualified: choice.qualified };
    if (choice.candidateId === null) return abort(choice.reason, inputs);
    const candidateId = choice.candidateId;
    phasesMs.decide = Date.now() - started;
    if (job.dryRun) return { outcome: 'dry-run', epoch: record.epoch, primaryId: record.primaryId, reason: `would promote ${candidateId} (of ${choice.qualified.join(', ')})` };
    await ctx.publish('failover.started', { failedPrimaryId: oldPrimary.id, candidateId, automatic: job.automatic }, record.epoch);

    // Fence the old primary if a hook can (it is unreachable from here, but may be alive elsewhere).
    const fenceStarted = Date.now();
    if (ctx.config.worker.hooks.fence) {
      checkAbort(ctx, 'fencing the old primary');
      try {
        await fenceNode(ctx, oldPrimary.id);
      } catch (err) {
        // Shutting down is not a failed fence: the job goes back to the queue for another worker.
        if (ctx.signal?.aborted) throw err;
        return abort(`fence-failed: ${(err as Error).message}`, inputs);
      }
    }
    phasesMs.fence = Date.now() - fenceStarted;

    // Replay everything received before promoting: nothing received is thrown away.
    const catchupStarted = Date.now();
    await waitUntil(
      async () => (await ctx.cluster.query<{ done: boolean }>(candidateId, 'SELECT pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn() AS done'))[0]?.done === true,
      ctx.config.worker.catchupTimeoutMs,
      ctx.signal,
    );
    phasesMs.catchup = Date.now() - catchupStarted;
    checkAbort(ctx, `promoting ${candidateId}`);
    progress = { candidateId, phase: 'promoting' };
    await recordProgress(ctx, record.epoch, progress, lock);
  }

  const done = await completePromotion(ctx, { from: record, candidateId: progress.candidateId, cause: job.automatic ? 'failover' : 'manual', lock }, progress);
  if (!done) {
    const now = await ctx.authority.primaryRecord();
    return { outcome: 'already-done', epoch: now?.epoch ?? record.epoch, primaryId: now?.primaryId ?? null, reason: 'the epoch moved on meanwhile' };
  }
  const { record: next, startLsn } = done;
  phasesMs.promote = done.promoteMs;
  phasesMs.publish = done.publishMs;
  const repointStarted = Date.now();
  const repointed = await repointReplicas(ctx, probes, next.primaryId, oldPrimary.id);
  if (ctx.config.failover.durability === 'synchronous') await applySyncStandbys(ctx, next);
  phasesMs.repoint = Date.now() - repointStarted;
  phasesMs.total = Date.now() - started + phasesMs.detect!;
  if (job.automatic) await ctx.ledger.recordFailover(Date.now());

  const lostBytes = lastOld && startLsn ? Math.max(0, lsnDiffBytes(lastOld, startLsn)) : null;
  await ctx.publish(
    'failover.finished',
    { fromId: oldPrimary.id, toId: next.primaryId, lastOldPrimaryLsn: lastOld, newPrimaryStartLsn: startLsn ?? '0/0', lostBytes, phasesMs, inputs: { ...inputs, repointed } },
    next.epoch,
  );
  ctx.logger.info({ from: oldPrimary.id, to: next.primaryId, epoch: next.epoch, lostBytes, phasesMs, repointed }, 'failover finished');
  return { outcome: 'promoted', epoch: next.epoch, primaryId: next.primaryId, lostBytes, repointed, phasesMs };
}
