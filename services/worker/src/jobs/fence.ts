import { decideFence } from '@pgreplica/decisions';
import type { FenceJob } from '@pgreplica/protocol';
import { sampleOf } from '../cluster-access.js';
import { checkAbort, type JobContext } from '../context.js';
import { nodeEnv, runHook } from '../hooks.js';
import { setReadOnly } from '../primary-change.js';

/** What a fence job did. */
export interface FenceResult {
  nodeId: string;
  outcome: 'fenced-by-hook' | 'fenced-softly' | 'not-needed';
  detail: string;
}

/**
 * Fences a writable node that is not the primary of the epoch (a returning
 * old primary, a replica promoted by hand): the fence hook when configured,
 * else softly — `default_transaction_read_only = on` and its client sessions
 * terminated. Routers refuse it anyway (epoch and client-side fencing); this
 * stops clients that do not use the router. An operator rejoins it.
 */
export async function fence(job: FenceJob, ctx: JobContext): Promise<FenceResult> {
  const record = await ctx.authority.primaryRecord();
  const probe = sampleOf((await ctx.cluster.probeAll()).get(job.nodeId));
  const verdict = decideFence({ nodeId: job.nodeId, record, probe });
  if (!verdict.fence) return { nodeId: job.nodeId, outcome: 'not-needed', detail: verdict.reason };
  checkAbort(ctx, `fencing ${job.nodeId}`);
  const hook = ctx.config.worker.hooks.fence;
  if (hook) {
    const node = ctx.cluster.node(job.nodeId);
    const run = await runHook(hook, nodeEnv('NODE', node), ctx.config.worker.hooks.timeoutMs);
    if (run.exitCode !== 0) throw new Error(`fence hook failed for ${job.nodeId} (exit ${run.exitCode}${run.timedOut ? ', timed out' : ''}): ${run.output.trim().slice(-500)}`);
    ctx.changed.push(`ran the fence hook for ${job.nodeId}`);
    ctx.logger.warn({ nodeId: job.nodeId }, 'stale primary fenced by the hook');
    return { nodeId: job.nodeId, outcome: 'fenced-by-hook', detail: run.output.trim().slice(-500) };
  }
  await setReadOnly(ctx, job.nodeId, true);
  const terminated = await ctx.cluster.withClient(job.nodeId, async (client) => {
    const { rows } = await client.query<{ n: number }>(
      `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
        WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND usename IS NOT NULL`,
    );
    return rows[0]?.n ?? 0;
  });
  ctx.changed.push(`terminated ${terminated} client session(s) on ${job.nodeId}`);
  ctx.logger.warn({ nodeId: job.nodeId, terminated }, 'stale primary fenced softly (read-only default, sessions terminated); rejoin it as a replica');
  return { nodeId: job.nodeId, outcome: 'fenced-softly', detail: `read-only by default, ${terminated} session(s) terminated` };
}
