import { compareLsn, type SwitchoverJob } from '@pgreplica/protocol';
import { UnrecoverableError } from 'bullmq';
import { sampleOf } from '../cluster-access.js';
import { checkAbort, type JobContext, waitUntil } from '../context.js';
import { nodeEnv, runHook } from '../hooks.js';
import { ensureSlot, promoteNode, recordNewPrimary, repointReplicas, setReadOnly } from '../primary-change.js';
import type { RepointOutcome } from '../repoint.js';

/** What a switchover job did. */
export interface SwitchoverResult {
  outcome: 'switched' | 'aborted' | 'already-done';
  epoch: number;
  primaryId: string;
  writePauseMs?: number;
  oldPrimary?: 'rejoined' | 'read-only' | 'stopped';
  repointed?: RepointOutcome[];
  phasesMs?: Record<string, number>;
  reason?: string;
}

const LOCK_TTL_MS = 10_000;

/**
 * Planned switchover, losing no acknowledged write: routers hold writes
 * (switchover.started), the old primary stops taking them (its stop hook, or
 * read-only once its write transactions end), the candidate replays the old
 * primary's last LSN, is promoted, the epoch moves, the other replicas are
 * repointed, and the old primary rejoins as a replica through the rejoin
 * hook. If the candidate does not catch up in time, the old primary is made
 * writable again (read-only path) and switchover.finished says ok: false.
 */
export async function switchover(job: SwitchoverJob, ctx: JobContext): Promise<SwitchoverResult> {
  const started = Date.now();
  const phasesMs: Record<string, number> = {};
  const record = await ctx.authority.primaryRecord();
  if (!record) throw new UnrecoverableError('no primary record on the bus');
  if (record.epoch !== job.epoch) return { outcome: 'already-done', epoch: record.epoch, primaryId: record.primaryId, reason: `epoch is ${record.epoch}, job was for ${job.epoch}` };
  if (record.primaryId === job.candidateId) throw new UnrecoverableError(`${job.candidateId} is already the primary`);
  const oldPrimary = ctx.cluster.node(record.primaryId);
  const candidate = ctx.cluster.node(job.candidateId);
  const lock = await ctx.changeLock.acquire(LOCK_TTL_MS);
  if (!lock) throw new Error('the cluster change lock is held by another job');
  try {
    const probes = await ctx.cluster.probeAll();
    const oldSample = sampleOf(probes.get(oldPrimary.id));
    const candidateSample = sampleOf(probes.get(candidate.id));
    if (!oldSample || oldSample.inRecovery) throw new UnrecoverableError(`the primary ${oldPrimary.id} is not reachable as a primary: use failover (pgreplica promote)`);
    if (!candidateSample?.inRecovery) throw new UnrecoverableError(`${candidate.id} is not a reachable replica`);
    if (candidateSample.walReceiver?.status !== 'streaming') throw new UnrecoverableError(`${candidate.id} does not stream (WAL receiver ${candidateSample.walReceiver?.status ?? 'not running'})`);

    await ctx.publish('switchover.started', { fromId: oldPrimary.id, toId: candidate.id, maxWritePauseMs: job.maxWritePauseMs }, record.epoch);
    const pauseStarted = Date.now();
    const hooks = ctx.config.worker.hooks;
    let target: string;
    checkAbort(ctx, `stopping writes on ${oldPrimary.id}`);
    // Routers hold new writes from switchover.started; refuse any that still
    // arrive (25006: certainly not run, so routers retry them on the new
    // primary), and let write transactions already running finish — never kill them.
    await setReadOnly(ctx, oldPrimary.id, true);
    await waitUntil(
      async () =>
        (await ctx.cluster.query<{ n: number }>(oldPrimary.id, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND backend_type = 'client backend' AND pid <> pg_backend_pid()"))[0]!.n === 0,
      Math.max(500, job.maxWritePauseMs / 4),
    );
    if (hooks.stop) {
      const run = await runHook(hooks.stop, nodeEnv('NODE', oldPrimary), hooks.timeoutMs);
      if (run.exitCode !== 0) throw new Error(`stop hook failed for ${oldPrimary.id} (exit ${run.exitCode}): ${run.output.trim().slice(-300)}`);
      ctx.changed.push(`stopped ${oldPrimary.id} (stop hook)`);
      // A stopping primary's walsenders send everything first, shutdown checkpoint included,
      // so the candidate ends up with all of the old timeline and the old primary can follow it.
      await waitUntil(async () => (await ctx.cluster.query<{ s: string | null }>(candidate.id, 'SELECT status AS s FROM pg_stat_wal_receiver'))[0]?.s !== 'streaming', 10_000);
      target = (await ctx.cluster.query<{ lsn: string }>(candidate.id, 'SELECT pg_last_wal_receive_lsn()::text AS lsn'))[0]!.lsn;
    } else {
      target = (await ctx.cluster.query<{ lsn: string }>(oldPrimary.id, 'SELECT pg_current_wal_lsn()::text AS lsn'))[0]!.lsn;
    }
    phasesMs.fence = Date.now() - pauseStarted;

    const catchupStarted = Date.now();
    const caughtUp = await waitUntil(
      async () => {
        const [row] = await ctx.cluster.query<{ lsn: string | null }>(candidate.id, 'SELECT pg_last_wal_replay_lsn()::text AS lsn');
        return row?.lsn != null && compareLsn(row.lsn, target) >= 0;
      },
      Math.min(ctx.config.worker.catchupTimeoutMs, Math.max(1_000, job.maxWritePauseMs)),
      ctx.signal,
    );
    phasesMs.catchup = Date.now() - catchupStarted;
    if (!caughtUp) {
      if (!hooks.stop) await setReadOnly(ctx, oldPrimary.id, false);
      const detail = `${candidate.id} did not replay ${target} in time; ${hooks.stop ? `${oldPrimary.id} stays stopped: start it again` : `${oldPrimary.id} is writable again`}`;
      await ctx.publish('switchover.finished', { fromId: oldPrimary.id, toId: candidate.id, ok: false, writePauseMs: Date.now() - pauseStarted, detail, phasesMs }, record.epoch);
      return { outcome: 'aborted', epoch: record.epoch, primaryId: oldPrimary.id, reason: detail, phasesMs };
    }

    checkAbort(ctx, `promoting ${candidate.id}`);
    const promoteStarted = Date.now();
    await promoteNode(ctx, candidate.id);
    phasesMs.promote = Date.now() - promoteStarted;
    const next = await recordNewPrimary(ctx, record, candidate.id, 'switchover');
    if (!next) throw new Error(`the epoch moved on during the switchover (expected ${record.epoch}); ${candidate.id} was promoted`);
    const writePauseMs = Date.now() - pauseStarted;

    const repointStarted = Date.now();
    const repointed = await repointReplicas(ctx, probes, candidate.id, oldPrimary.id);
    phasesMs.repoint = Date.now() - repointStarted;

    // The old primary rejoins as a replica of the new one (host access: the rejoin hook).
    let oldState: SwitchoverResult['oldPrimary'] = hooks.stop ? 'stopped' : 'read-only';
    if (hooks.rejoin) {
      await ensureSlot(ctx, candidate.id, oldPrimary.id);
      const run = await runHook(hooks.rejoin, { ...nodeEnv('NODE', oldPrimary), ...nodeEnv('PRIMARY', candidate) }, hooks.timeoutMs);
      if (run.exitCode === 0) {
        oldState = 'rejoined';
        ctx.changed.push(`${oldPrimary.id} rejoined as a replica of ${candidate.id} (rejoin hook)`);
      } else {
        ctx.logger.error({ output: run.output.slice(-500) }, 'rejoin hook failed: the old primary stays fenced; rejoin it by hand');
      }
    }
    phasesMs.total = Date.now() - started;
    await ctx.publish('switchover.finished', { fromId: oldPrimary.id, toId: candidate.id, ok: true, writePauseMs, phasesMs }, next.epoch);
    ctx.logger.info({ from: oldPrimary.id, to: candidate.id, epoch: next.epoch, writePauseMs, oldState, repointed }, 'switchover finished');
    return { outcome: 'switched', epoch: next.epoch, primaryId: candidate.id, writePauseMs, oldPrimary: oldState, repointed, phasesMs };
  } finally {
    await lock.release().catch(() => {});
  }
}
