import type { HeldLock } from '@pgreplica/bus';
import { compareLsn, type PrimaryRecord, type SwitchoverJob } from '@pgreplica/protocol';
import { UnrecoverableError } from 'bullmq';
import type pg from 'pg';
import { currentAuthority } from '../authority.js';
import { type NodeAddress, sampleOf } from '../cluster-access.js';
import { CHANGE_LOCK_TTL_MS, checkAbort, type JobContext, waitUntil } from '../context.js';
import { closeDatabases, openTransactions, terminateClientSessions } from '../fencing.js';
import { nodeEnv, runHook } from '../hooks.js';
import { completePromotion, recordProgress, repointReplicas } from '../primary-change.js';
import { ensureSlot, type RepointOutcome } from '../repoint.js';
import { applySyncStandbys } from './sync-standbys.js';
import { hookEnv } from '../hook-env.js';

/** What a switchover job did. */
export interface SwitchoverResult {
  outcome: 'switched' | 'aborted' | 'already-done';
  epoch: number;
  primaryId: string;
  writePauseMs?: number;
  oldPrimary?: 'rejoined' | 'fenced' | 'stopped';
  repointed?: RepointOutcome[];
  phasesMs?: Record<string, number>;
  reason?: string;
}

/** Shortest grace given to running transactions before their sessions are terminated. */
const MIN_DRAIN_GRACE_MS = 500;

/** How long the old primary may take to see the candidate as its synchronous standby. */
const SYNC_TAKEOVER_MS = 5_000;

/** What {@link drain} changed, so {@link undoDrain} can put it back. */
interface Drained {
  /** `synchronous_standby_names` before the switchover. */
  synchronousStandbyNames: string;
}

/**
 * Drains the old primary so that nothing it acknowledges can be lost:
 * - the candidate becomes its synchronous standby, so from then on a commit
 *   is acknowledged only once the candidate has flushed it — and, once the
 *   candidate is promoted and stops acknowledging, never again;
 * - `default_transaction_read_only`, so routers get 25006 and retry on the
 *   new primary instead of waiting;
 * - a grace period for running transactions, then every client session is
 *   terminated (a transaction cut here was never acknowledged).
 * Nothing here replicates: the candidate must not inherit a fence.
 */
async function drain(ctx: JobContext, session: pg.Client, node: NodeAddress, candidate: NodeAddress, graceMs: number): Promise<Drained> {
  const { rows } = await session.query<{ names: string; app: string | null }>(
    `SELECT current_setting('synchronous_standby_names') AS names,
            (SELECT r.application_name FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = $1) AS app`,
    [candidate.slotName],
  );
  const drained = { synchronousStandbyNames: rows[0]?.names ?? '' };
  const app = rows[0]?.app;
  if (!app) throw new Error(`${candidate.id} does not stream from ${node.id} through slot ${candidate.slotName}`);
  await session.query(`ALTER SYSTEM SET synchronous_standby_names = ${session.escapeLiteral(`FIRST 1 (${session.escapeIdentifier(app)})`)}`);
  await session.query('ALTER SYSTEM SET default_transaction_read_only = on');
  await session.query('SELECT pg_reload_conf()');
  ctx.changed.push(`made ${candidate.id} the synchronous standby of ${node.id} and ${node.id} read-only by default`);
  const synchronous = await waitUntil(
    async () => (await session.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_replication WHERE application_name = $1 AND sync_state = 'sync'", [app])).rows[0]!.n > 0,
    SYNC_TAKEOVER_MS,
  );
  if (!synchronous) throw new Error(`${candidate.id} did not become the synchronous standby of ${node.id} within ${SYNC_TAKEOVER_MS} ms`);
  await waitUntil(async () => (await openTransactions(session)) === 0, graceMs);
  const terminated = await terminateClientSessions(session);
  if (terminated > 0) ctx.changed.push(`terminated ${terminated} client session(s) on ${node.id}`);
  return drained;
}

/** Makes the old primary writable and asynchronous again (before any promotion). Returns what could not be undone. */
async function undoDrain(ctx: JobContext, session: pg.Client | null, node: NodeAddress, drained: Drained | null): Promise<string | null> {
  if (!drained) return null;
  try {
    const run = async (client: pg.Client) => {
      await client.query(`ALTER SYSTEM SET synchronous_standby_names = ${client.escapeLiteral(drained.synchronousStandbyNames)}`);
      await client.query('ALTER SYSTEM RESET default_transaction_read_only');
      await client.query('SELECT pg_reload_conf()');
    };
    if (session) await run(session);
    else await ctx.cluster.withClient(node.id, run);
    ctx.changed.push(`undone: ${node.id} is asynchronous and writable again`);
    return null;
  } catch (err) {
    return `could not make ${node.id} writable again (${(err as Error).message}): reset synchronous_standby_names and default_transaction_read_only by hand`;
  }
}

/**
 * Planned switchover, losing no acknowledged write: routers hold writes
 * (`switchover.started`), the old primary is drained until no session can
 * write, its last position is read only then, the candidate replays it, is
 * promoted (recorded as the epoch's candidate first), the new epoch is
 * recorded in its database and announced, the other replicas are repointed,
 * and the old primary rejoins through the rejoin hook — or stays fenced
 * (its databases refuse connections) until an operator rejoins it. Any
 * failure before the promotion undoes the drain (`switchover.finished`
 * with `ok: false`); after it, the job drives forward (a retry resumes from
 * the recorded progress).
 */
export async function switchover(job: SwitchoverJob, ctx: JobContext, jobId: string): Promise<SwitchoverResult> {
  const lock = await ctx.changeLock.acquire(jobId, CHANGE_LOCK_TTL_MS);
  if (!lock) throw new Error('the cluster change lock is held by another job');
  try {
    const probes = await ctx.cluster.probeAll();
    const record = await currentAuthority(ctx, probes);
    const progress = await ctx.ledger.progress(record.epoch);
    if (record.epoch !== job.epoch) return { outcome: 'already-done', epoch: record.epoch, primaryId: record.primaryId, reason: `epoch is ${record.epoch}, job was for ${job.epoch}` };
    if (progress) {
      if (progress.candidateId !== job.candidateId) throw new UnrecoverableError(`a promotion of ${progress.candidateId} is recorded for epoch ${record.epoch}; not switching to ${job.candidateId}`);
      return await finish(ctx, record, job.candidateId, lock, probes, Date.now(), {});
    }
    if (record.primaryId === job.candidateId) throw new UnrecoverableError(`${job.candidateId} is already the primary`);
    const oldPrimary = ctx.cluster.node(record.primaryId);
    const candidate = ctx.cluster.node(job.candidateId);
    const oldSample = sampleOf(probes.get(oldPrimary.id));
    const candidateSample = sampleOf(probes.get(candidate.id));
    if (!oldSample || oldSample.inRecovery) throw new UnrecoverableError(`the primary ${oldPrimary.id} is not reachable as a primary: use failover (pgreplica promote)`);
    if (!candidateSample?.inRecovery) throw new UnrecoverableError(`${candidate.id} is not a reachable replica`);
    if (candidateSample.walReceiver?.status !== 'streaming') throw new UnrecoverableError(`${candidate.id} does not stream (WAL receiver ${candidateSample.walReceiver?.status ?? 'not running'})`);
    return await runSwitchover(job, ctx, { record, oldPrimary, candidate, lock, probes });
  } finally {
    await lock.release().catch(() => {});
  }
}

async function runSwitchover(
  job: SwitchoverJob,
  ctx: JobContext,
  run: { record: PrimaryRecord; oldPrimary: NodeAddress; candidate: NodeAddress; lock: HeldLock; probes: Awaited<ReturnType<JobContext['cluster']['probeAll']>> },
): Promise<SwitchoverResult> {
  const { record, oldPrimary, candidate, lock, probes } = run;
  const phasesMs: Record<string, number> = {};
  const hooks = ctx.config.worker.hooks;
  await ctx.publish('switchover.started', { fromId: oldPrimary.id, toId: candidate.id, maxWritePauseMs: job.maxWritePauseMs }, record.epoch);
  const pauseStarted = Date.now();
  let session: pg.Client | null = null;
  let drained: Drained | null = null;
  let stopped = false;
  let cascaded = false;
  const cascadeWaitMs = Math.min(ctx.config.worker.repointTimeoutMs, Math.max(1_000, job.maxWritePauseMs / 2));
  const fail = async (reason: string): Promise<SwitchoverResult> => {
    const notUndone = stopped ? `${oldPrimary.id} was stopped by the stop hook: start it again` : await undoDrain(ctx, session, oldPrimary, drained);
    // The other replicas stream from the old primary again (through the candidate, they still would).
    if (cascaded && !stopped) await repointReplicas(ctx, probes, oldPrimary.id, candidate.id, cascadeWaitMs);
    const outcome = notUndone ?? `${oldPrimary.id} is writable again`;
    const detail = `${reason}; ${outcome} (changed: ${ctx.changed.join('; ') || 'nothing'})`;
    await ctx.publish('switchover.finished', { fromId: oldPrimary.id, toId: candidate.id, ok: false, writePauseMs: Date.now() - pauseStarted, detail, phasesMs }, record.epoch);
    ctx.logger.warn({ detail, changed: ctx.changed }, 'switchover aborted');
    return { outcome: 'aborted', epoch: record.epoch, primaryId: oldPrimary.id, reason: detail, phasesMs };
  };
  try {
    try {
      checkAbort(ctx, `draining ${oldPrimary.id}`);
      session = await ctx.cluster.connect(oldPrimary.id);
      session.on('end', () => {
        session = null;
      });
      drained = await drain(ctx, session, oldPrimary, candidate, Math.max(MIN_DRAIN_GRACE_MS, job.maxWritePauseMs / 4));
      phasesMs.fence = Date.now() - pauseStarted;
      const catchupStarted = Date.now();
      const replayed = (target: string) =>
        waitUntil(
          async () => {
            const [row] = await ctx.cluster.query<{ lsn: string | null }>(candidate.id, 'SELECT pg_last_wal_replay_lsn()::text AS lsn');
            return row?.lsn != null && compareLsn(row.lsn, target) >= 0;
          },
          Math.min(ctx.config.worker.catchupTimeoutMs, Math.max(1_000, job.maxWritePauseMs)),
          ctx.signal,
        );
      // From here on every acknowledged commit is on the candidate (it is synchronous): what it
      // must replay is what was committed before. It does so while the old primary still runs,
      // before anything that cannot be undone (the stop hook, the promotion): a candidate that
      // cannot catch up leaves the old primary running, and writable again.
      const committed = (await session.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn')).rows[0]!.lsn;
      if (!(await replayed(committed))) return await fail(`${candidate.id} did not replay ${committed} in time`);
      // The other replicas cascade from the candidate before it is promoted (they follow its new
      // timeline by themselves): WAL the old primary still writes after the promotion (a session
      // that turned default_transaction_read_only off, a checkpoint) must reach none of them, or
      // they fork off the new timeline and can follow nobody.
      checkAbort(ctx, `repointing the replicas to ${candidate.id}`);
      cascaded = true;
      await repointReplicas(ctx, probes, candidate.id, oldPrimary.id, cascadeWaitMs);
      if (hooks.stop) {
        checkAbort(ctx, `stopping ${oldPrimary.id}`);
        // Not interrupted at shutdown (no signal): a half-run stop leaves the node in a state
        // nobody knows; hooks.timeoutMs bounds it.
        const hook = await runHook(hooks.stop, hookEnv(ctx.config, nodeEnv('NODE', oldPrimary)), hooks.timeoutMs);
        if (hook.exitCode !== 0) return await fail(`stop hook failed for ${oldPrimary.id} (exit ${hook.exitCode}): ${hook.output.trim().slice(-300)}`);
        stopped = true;
        ctx.changed.push(`stopped ${oldPrimary.id} (stop hook)`);
        // A stopping primary's walsenders send everything first, shutdown checkpoint included,
        // so the candidate ends up with all of the old timeline and the old primary can follow it.
        await waitUntil(async () => (await ctx.cluster.query<{ s: string | null }>(candidate.id, 'SELECT status AS s FROM pg_stat_wal_receiver'))[0]?.s !== 'streaming', 10_000);
        const last = (await ctx.cluster.query<{ lsn: string }>(candidate.id, 'SELECT pg_last_wal_receive_lsn()::text AS lsn'))[0]!.lsn;
        if (!(await replayed(last))) return await fail(`${candidate.id} did not replay ${last}, the stopped ${oldPrimary.id}'s last position, in time`);
      }
      phasesMs.catchup = Date.now() - catchupStarted;
      checkAbort(ctx, `promoting ${candidate.id}`);
    } catch (err) {
      return await fail((err as Error).message);
    }
    // From here on, drive forward: the progress record makes a retry resume.
    await recordProgress(ctx, record.epoch, { candidateId: candidate.id, phase: 'promoting' }, lock);
    return await finish(ctx, record, candidate.id, lock, probes, pauseStarted, phasesMs, stopped ? 'stopped' : session);
  } finally {
    await (session as pg.Client | null)?.end().catch(() => {});
  }
}

/** Promotion onwards (also where a re-delivered job resumes): promote, record, announce, repoint, rejoin. */
async function finish(
  ctx: JobContext,
  record: PrimaryRecord,
  candidateId: string,
  lock: HeldLock,
  probes: Awaited<ReturnType<JobContext['cluster']['probeAll']>>,
  pauseStarted: number,
  phasesMs: Record<string, number>,
  old: pg.Client | 'stopped' | null = null,
): Promise<SwitchoverResult> {
  const hooks = ctx.config.worker.hooks;
  const oldPrimary = ctx.cluster.node(record.primaryId);
  const progress = (await ctx.ledger.progress(record.epoch)) ?? { candidateId, phase: 'promoting' as const };
  const done = await completePromotion(ctx, { from: record, candidateId, cause: 'switchover', lock }, progress);
  if (!done) throw new Error(`the epoch moved on during the switchover (expected ${record.epoch}); ${candidateId} was promoted`);
  phasesMs.promote = done.promoteMs;
  phasesMs.publish = done.publishMs;
  const writePauseMs = Date.now() - pauseStarted;
  const next = done.record;

  const repointStarted = Date.now();
  const repointed = await repointReplicas(ctx, probes, candidateId, oldPrimary.id);
  if (ctx.config.failover.durability === 'synchronous') await applySyncStandbys(ctx, next);
  phasesMs.repoint = Date.now() - repointStarted;

  // The old primary rejoins as a replica of the new one (host access: the rejoin hook), else it
  // is fenced. Only now, with every replica repointed: a fence on it must not replicate anywhere.
  let oldState: SwitchoverResult['oldPrimary'] = old === 'stopped' ? 'stopped' : 'fenced';
  if (old !== 'stopped' && !hooks.rejoin) await fenceOldPrimary(ctx, oldPrimary, old);
  if (hooks.rejoin) {
    await ensureSlot(ctx, candidateId, oldPrimary.slotName);
    // Not interrupted at shutdown either: a half-run pg_rewind is worse than a late exit.
    const run = await runHook(hooks.rejoin, hookEnv(ctx.config, { ...nodeEnv('NODE', oldPrimary), ...nodeEnv('PRIMARY', ctx.cluster.node(candidateId)) }), hooks.timeoutMs);
    if (run.exitCode === 0) {
      oldState = 'rejoined';
      ctx.changed.push(`${oldPrimary.id} rejoined as a replica of ${candidateId} (rejoin hook)`);
    } else {
      ctx.logger.error({ output: run.output.slice(-500) }, 'rejoin hook failed: the old primary stays fenced; rejoin it by hand');
    }
  }
  phasesMs.total = Date.now() - pauseStarted;
  await ctx.publish('switchover.finished', { fromId: oldPrimary.id, toId: candidateId, ok: true, writePauseMs, phasesMs }, next.epoch);
  ctx.logger.info({ from: oldPrimary.id, to: candidateId, epoch: next.epoch, writePauseMs, oldState, repointed }, 'switchover finished');
  return { outcome: 'switched', epoch: next.epoch, primaryId: candidateId, writePauseMs, oldPrimary: oldState, repointed, phasesMs };
}

/**
 * Fences the old primary once nothing streams from it: its databases refuse
 * connections and its sessions are terminated. Its commits already wait for
 * a standby that is gone; this also stops sessions that turned
 * `synchronous_commit` down. Reported, never thrown: the new primary is up.
 */
async function fenceOldPrimary(ctx: JobContext, node: NodeAddress, session: pg.Client | null): Promise<void> {
  const run = async (client: pg.Client) => {
    const databases = await closeDatabases(ctx, node.id, client);
    ctx.changed.push(`fenced ${node.id}: databases ${databases.join(', ')} refuse connections until it rejoins`);
    await terminateClientSessions(client);
  };
  try {
    if (session) await run(session);
    else await ctx.cluster.withClient(node.id, run);
  } catch (err) {
    ctx.logger.error({ err, nodeId: node.id }, 'cannot fence the old primary; routers refuse it by epoch, but rejoin or stop it');
  }
}
