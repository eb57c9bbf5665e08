import { decideFence } from '@pgreplica/decisions';
import type { FenceJob } from '@pgreplica/protocol';
import { currentAuthority } from '../authority.js';
import { sampleOf } from '../cluster-access.js';
import { CHANGE_LOCK_TTL_MS, checkAbort, type JobContext } from '../context.js';
import { fenceNode } from '../fencing.js';

/** What a fence job did. */
export interface FenceResult {
  nodeId: string;
  outcome: 'fenced-by-hook' | 'fenced' | 'not-needed';
  detail: string;
}

/**
 * Fences a writable node that is not the primary of the epoch (a returning
 * old primary, a replica promoted by hand) so that it accepts no write from
 * any client until it rejoins as a replica: the fence hook when configured,
 * else its databases closed to connections and its sessions terminated.
 * Runs under the change lock, only for its own epoch, and never against the
 * candidate of a promotion in progress or a node whose own database records
 * a newer epoch.
 */
export async function fence(job: FenceJob, ctx: JobContext, jobId: string): Promise<FenceResult> {
  const lock = await ctx.changeLock.acquire(jobId, CHANGE_LOCK_TTL_MS);
  if (!lock) throw new Error('the cluster change lock is held by another job');
  try {
    const probes = await ctx.cluster.probeAll({ fast: true });
    const record = await currentAuthority(ctx, probes);
    const probe = sampleOf(probes.get(job.nodeId));
    const progress = await ctx.ledger.progress(record.epoch);
    const verdict = decideFence({
      nodeId: job.nodeId,
      jobEpoch: job.epoch,
      record,
      probe: probe ? { inRecovery: probe.inRecovery, epoch: probe.epoch?.epoch ?? null } : null,
      candidateId: progress?.candidateId ?? null,
    });
    if (!verdict.fence) return { nodeId: job.nodeId, outcome: 'not-needed', detail: verdict.reason };
    checkAbort(ctx, `fencing ${job.nodeId}`);
    if (!(await lock.extend())) throw new Error('lost the change lock before fencing');
    const done = await fenceNode(ctx, job.nodeId);
    ctx.logger.warn({ nodeId: job.nodeId, ...done }, 'fenced a writable node that is not the primary of the epoch; rejoin it as a replica');
    return done.kind === 'hook'
      ? { nodeId: job.nodeId, outcome: 'fenced-by-hook', detail: 'the fence hook ran' }
      : { nodeId: job.nodeId, outcome: 'fenced', detail: `databases ${done.databases.join(', ')} refuse connections; ${done.terminated} session(s) terminated` };
  } finally {
    await lock.release().catch(() => {});
  }
}
