import type { RepointJob } from '@pgreplica/protocol';
import { currentAuthority } from '../authority.js';
import { sampleOf } from '../cluster-access.js';
import { CHANGE_LOCK_TTL_MS, checkAbort, type JobContext } from '../context.js';
import { repoint } from '../repoint.js';

/** What a repoint job did. */
export interface RepointResult {
  nodeId: string;
  outcome: 'repointed' | 'not-needed';
  primaryId: string;
  detail: string;
}

/**
 * Makes a replica stream from the primary of the epoch again: one that was
 * unreachable when a promotion or switchover repointed the others and came
 * back following the deposed primary (its WAL receiver down, or streaming
 * from the old primary now a standby). Under the change
 * lock, and only when the job's epoch and primary are still the record's,
 * the node is in recovery and the primary answers as one: a node that is
 * writable is a fence's matter, one on a forked timeline a rejoin's.
 */
export async function repointReplica(job: RepointJob, ctx: JobContext, jobId: string): Promise<RepointResult> {
  const lock = await ctx.changeLock.acquire(jobId, CHANGE_LOCK_TTL_MS);
  if (!lock) throw new Error('the cluster change lock is held by another job');
  try {
    const probes = await ctx.cluster.probeAll({ fast: true });
    const record = await currentAuthority(ctx, probes);
    const notNeeded = (detail: string): RepointResult => ({ nodeId: job.nodeId, outcome: 'not-needed', primaryId: record.primaryId, detail });
    if (record.epoch !== job.epoch || record.primaryId !== job.primaryId) return notNeeded(`the primary is ${record.primaryId} of epoch ${record.epoch} now`);
    if (job.nodeId === record.primaryId) return notNeeded(`${job.nodeId} is the primary`);
    const sample = sampleOf(probes.get(job.nodeId));
    if (!sample) throw new Error(`${job.nodeId} is not reachable`);
    if (!sample.inRecovery) return notNeeded(`${job.nodeId} is not in recovery: fencing or rejoining it is another job`);
    const primarySample = sampleOf(probes.get(record.primaryId));
    if (!primarySample || primarySample.inRecovery) throw new Error(`the primary ${record.primaryId} is not reachable as a primary`);
    const slotName = ctx.cluster.node(job.nodeId).slotName;
    if (primarySample.standbys.some((s) => s.state === 'streaming' && (s.slotName === slotName || s.applicationName === slotName))) {
      return notNeeded(`${job.nodeId} streams from ${record.primaryId}`);
    }
    checkAbort(ctx, `repointing ${job.nodeId}`);
    if (!(await lock.extend())) throw new Error('lost the change lock before repointing');
    const outcome = await repoint(ctx.cluster.node(job.nodeId), ctx.cluster.node(record.primaryId), ctx);
    if (!outcome.streaming) throw new Error(`${job.nodeId} does not stream from ${record.primaryId} after the repoint: ${outcome.detail}`);
    ctx.logger.info({ nodeId: job.nodeId, primaryId: record.primaryId }, 'repointed a replica whose WAL receiver was down');
    return { nodeId: job.nodeId, outcome: 'repointed', primaryId: record.primaryId, detail: outcome.detail };
  } finally {
    await lock.release().catch(() => {});
  }
}
