import { chooseCandidate, decidePromotion, observeWitnesses } from '@pgreplica/decisions';
import { lsnDiffBytes, type PromoteJob, parseEvent } from '@pgreplica/protocol';
import { UnrecoverableError } from 'bullmq';
import { sampleOf } from '../cluster-access.js';
import { checkAbort, type JobContext, waitUntil } from '../context.js';
import { nodeEnv, runHook } from '../hooks.js';
import { promoteNode, recordNewPrimary, repointReplicas } from '../primary-change.js';
import type { RepointOutcome } from '../repoint.js';

/** What a promote job did. */
export interface PromoteResult {
  outcome: 'promoted' | 'already-done' | 'aborted' | 'suppressed';
  epoch: number;
  primaryId: string | null;
  reason?: string;
  lostBytes?: number | null;
  repointed?: RepointOutcome[];
  phasesMs?: Record<string, number>;
}

/** How long the change lock outlives a worker that died holding it (it is renewed while held). */
const LOCK_TTL_MS = 10_000;

/** The last position the monitor saw on the old primary (its snapshot keeps it in replayLsn). */
async function lastOldPrimaryLsn(ctx: JobContext, primaryId: string): Promise<string | null> {
  const raw = await ctx.authority.snapshotRaw();
  if (!raw) return null;
  const parsed = parseEvent(raw, { cluster: ctx.config.cluster, key: ctx.config.busKey });
  if (!parsed.ok || parsed.event.type !== 'snapshot') return null;
  return parsed.event.topology.nodes.find((n) => n.id === primaryId)?.replayLsn ?? null;
}

/**
 * Failover. Runs only if, checked now by the worker itself, the primary of
 * the job's epoch is unreachable and no reachable replica still streams from
 * it (witnesses). Picks the most advanced received LSN within
 * `maxLagOnFailoverBytes` (ties by priority, never `nofailover`), runs the
 * fence hook if any, waits for the candidate to replay what it received,
 * promotes it, moves the primary record to it with an epoch bump
 * (compare-and-set: one promotion per epoch), publishes primary.changed,
 * repoints the other replicas and reports the lost range and phase times.
 * A re-delivered job (worker killed mid-way) resumes from its recorded
 * progress instead of promoting again.
 */
export async function promote(job: PromoteJob, ctx: JobContext): Promise<PromoteResult> {
  const started = Date.now();
  const phasesMs: Record<string, number> = { detect: Math.max(0, started - Date.parse(job.detectedAt)) };
  const record = await ctx.authority.primaryRecord();
  if (!record) throw new UnrecoverableError('no primary record on the bus: the monitor has not recorded a primary yet');
  if (record.epoch > job.epoch) {
    return { outcome: 'already-done', epoch: record.epoch, primaryId: record.primaryId, reason: `epoch ${job.epoch} already ended (now ${record.epoch}, primary ${record.primaryId})` };
  }
  if (record.epoch < job.epoch) throw new UnrecoverableError(`job for epoch ${job.epoch}, but the bus is at epoch ${record.epoch}`);
  if (record.primaryId !== job.failedPrimaryId) throw new UnrecoverableError(`job says ${job.failedPrimaryId} failed, but the primary of epoch ${record.epoch} is ${record.primaryId}`);

  const suppress = async (reason: 'paused' | 'flap-window', detail: string): Promise<PromoteResult> => {
    await ctx.publish('failover.suppressed', { failedPrimaryId: job.failedPrimaryId, reason, detail, inputs: { jobEpoch: job.epoch } }, record.epoch);
    ctx.logger.warn({ reason, detail }, 'failover suppressed');
    return { outcome: 'suppressed', epoch: record.epoch, primaryId: record.primaryId, reason: detail };
  };
  if (job.automatic && (await ctx.authority.paused())) return suppress('paused', 'automatic remediation is paused (pgreplica resume)');
  if (job.automatic) {
    const last = await ctx.ledger.lastFailoverAt();
    if (last !== null && Date.now() - last < ctx.config.worker.flapWindowMs) {
      return suppress('flap-window', `an automatic failover ran ${Date.now() - last} ms ago; at most one per ${ctx.config.worker.flapWindowMs} ms (promote by hand to override)`);
    }
  }

  const lock = await ctx.changeLock.acquire(LOCK_TTL_MS);
  // Busy: another job changes the primary; retried with back-off (this job re-checks everything then).
  if (!lock) throw new Error('the cluster change lock is held by another job');
  try {
    const abort = async (reason: string, inputs: Record<string, unknown>): Promise<PromoteResult> => {
      await ctx.publish('failover.aborted', { failedPrimaryId: job.failedPrimaryId, reason, inputs }, record.epoch);
      ctx.logger.warn({ reason, inputs }, 'failover aborted; nothing changed');
      return { outcome: 'aborted', epoch: record.epoch, primaryId: record.primaryId, reason };
    };
    const oldPrimary = ctx.cluster.node(job.failedPrimaryId);
    const progress = await ctx.ledger.progress(record.epoch);
    const probes = await ctx.cluster.probeAll();
    const lastOld = await lastOldPrimaryLsn(ctx, oldPrimary.id);
    let candidateId: string;
    let startLsn: string | undefined;
    let inputs: Record<string, unknown>;

    const resumed = progress !== null && sampleOf(probes.get(progress.candidateId))?.inRecovery === false;
    if (progress && resumed) {
      // Killed after promoting: finish the job, do not promote anything else.
      candidateId = progress.candidateId;
      startLsn = progress.startLsn ?? sampleOf(probes.get(candidateId))?.currentLsn ?? undefined;
      inputs = { resumed: true, progress };
      ctx.logger.warn({ candidateId }, 'resuming a promotion that already happened');
    } else {
      const primarySample = sampleOf(probes.get(oldPrimary.id));
      const others = ctx.cluster.nodes.filter((n) => n.id !== oldPrimary.id);
      const observations = observeWitnesses(
        others.map((n) => ({ nodeId: n.id, reachable: probes.get(n.id)?.ok === true, sample: sampleOf(probes.get(n.id)) })),
        { otherNodeAddresses: new Set(others.map((n) => `${n.host}:${n.port}`)), witnessFreshMs: ctx.config.failover.witnessFreshMs, nowMs: Date.now() },
      );
      inputs = { epoch: record.epoch, oldPrimary: oldPrimary.id, lastOldPrimaryLsn: lastOld, primaryReachable: primarySample !== null, observations };
      const verdict = decidePromotion({ primaryWritable: primarySample !== null && !primarySample.inRecovery, witnesses: observations });
      if (!verdict.proceed) return abort(verdict.reason, inputs);

      const choice = chooseCandidate({
        observations,
        nodes: ctx.cluster.nodes,
        maxLagOnFailoverBytes: job.maxLagOnFailoverBytes,
        lastPrimaryLsn: lastOld,
        requestedId: job.candidateId,
      });
      inputs = { ...inputs, reference: choice.reference, qualified: choice.qualified };
      if (choice.candidateId === null) return abort(choice.reason, inputs);
      candidateId = choice.candidateId;
      phasesMs.decide = Date.now() - started;
      if (job.dryRun) return { outcome: 'aborted', epoch: record.epoch, primaryId: record.primaryId, reason: `dry run: would promote ${candidateId}` };
      await ctx.publish('failover.started', { failedPrimaryId: oldPrimary.id, candidateId, automatic: job.automatic }, record.epoch);

      // Fence the old primary if a hook can (it is unreachable from here, but may be alive elsewhere).
      const fenceStarted = Date.now();
      if (ctx.config.worker.hooks.fence) {
        checkAbort(ctx, 'fencing the old primary');
        const run = await runHook(ctx.config.worker.hooks.fence, nodeEnv('NODE', oldPrimary), ctx.config.worker.hooks.timeoutMs);
        if (run.exitCode !== 0) return abort(`fence-failed: the fence hook exited ${run.exitCode}${run.timedOut ? ' (timed out)' : ''}: ${run.output.trim().slice(-300)}`, inputs);
        ctx.changed.push(`ran the fence hook for ${oldPrimary.id}`);
      }
      phasesMs.fence = Date.now() - fenceStarted;
      await lock.extend();

      // Replay everything received before promoting: nothing received is thrown away.
      const catchupStarted = Date.now();
      await waitUntil(
        async () => {
          const [row] = await ctx.cluster.query<{ done: boolean }>(candidateId, 'SELECT pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn() AS done');
          return row?.done === true;
        },
        ctx.config.worker.catchupTimeoutMs,
        ctx.signal,
      );
      phasesMs.catchup = Date.now() - catchupStarted;

      checkAbort(ctx, `promoting ${candidateId}`);
      const promoteStarted = Date.now();
      await ctx.ledger.setProgress(record.epoch, { candidateId, phase: 'promoting' });
      const [before] = await ctx.cluster.query<{ lsn: string }>(candidateId, 'SELECT pg_last_wal_replay_lsn()::text AS lsn');
      startLsn = before?.lsn;
      await promoteNode(ctx, candidateId);
      await ctx.ledger.setProgress(record.epoch, { candidateId, phase: 'promoted', ...(startLsn ? { startLsn } : {}) });
      phasesMs.promote = Date.now() - promoteStarted;
    }

    // Move the primary record (compare-and-set on the epoch: one promotion per epoch).
    const publishStarted = Date.now();
    const next = await recordNewPrimary(ctx, record, candidateId, job.automatic ? 'failover' : 'manual');
    if (!next) {
      const now = await ctx.authority.primaryRecord();
      return { outcome: 'already-done', epoch: now?.epoch ?? record.epoch, primaryId: now?.primaryId ?? null, reason: 'the epoch moved on meanwhile' };
    }
    phasesMs.publish = Date.now() - publishStarted;

    const repointStarted = Date.now();
    const repointed = await repointReplicas(ctx, probes, candidateId, oldPrimary.id);
    phasesMs.repoint = Date.now() - repointStarted;
    phasesMs.total = Date.now() - started + phasesMs.detect!;
    if (job.automatic) await ctx.ledger.recordFailover(Date.now());

    const lostBytes = lastOld && startLsn ? Math.max(0, lsnDiffBytes(lastOld, startLsn)) : null;
    await ctx.publish(
      'failover.finished',
      {
        fromId: oldPrimary.id,
        toId: candidateId,
        lastOldPrimaryLsn: lastOld,
        newPrimaryStartLsn: startLsn ?? '0/0',
        lostBytes,
        phasesMs,
        inputs: { ...inputs, repointed },
      },
      next.epoch,
    );
    ctx.logger.info({ from: oldPrimary.id, to: candidateId, epoch: next.epoch, lostBytes, phasesMs, repointed }, 'failover finished');
    return { outcome: 'promoted', epoch: next.epoch, primaryId: candidateId, lostBytes, repointed, phasesMs };
  } finally {
    await lock.release().catch(() => {});
  }
}
