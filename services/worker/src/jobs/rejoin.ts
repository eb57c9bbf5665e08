import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decideRejoin } from '@pgreplica/decisions';
import type { BusEventPayload, RejoinJob } from '@pgreplica/protocol';
import { UnrecoverableError } from 'bullmq';
import { currentAuthority } from '../authority.js';
import { sampleOf } from '../cluster-access.js';
import { CHANGE_LOCK_TTL_MS, checkAbort, type JobContext, waitUntil } from '../context.js';
import { nodeEnv, runHook } from '../hooks.js';
import { ensureSlot } from '../repoint.js';
import { hookEnv } from '../hook-env.js';

/** What a rejoin job did. */
export interface RejoinResult {
  nodeId: string;
  outcome: 'rejoined' | 'already-following' | 'not-needed';
  primaryId: string;
  detail: string;
  lostTail?: BusEventPayload<'node.rejoined'>['lostTail'];
}

/** What the rejoin hook may write to `PGREPLICA_REPORT_FILE` (JSON). */
interface HookReport {
  method?: 'rewind' | 'clone';
  lostTail?: BusEventPayload<'node.rejoined'>['lostTail'];
}

function readReport(path: string): HookReport {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as HookReport;
  } catch {
    return {};
  }
}

/**
 * Makes a node that is not the primary of the epoch — a deposed primary,
 * fenced or not, down or up — stream from the primary again, through the
 * rejoin hook (host access: stop it, pg_rewind, else clone again, start as a
 * standby). The WAL it wrote past the fork is not silently dropped: the hook
 * reports it (and keeps it aside) in the file named by
 * `PGREPLICA_REPORT_FILE`, and `node.rejoined` carries the report. Under the
 * change lock; never the primary, the candidate of a promotion in progress,
 * or a node whose database records a newer epoch.
 */
export async function rejoin(job: RejoinJob, ctx: JobContext, jobId: string): Promise<RejoinResult> {
  const hook = ctx.config.worker.hooks.rejoin;
  if (!hook) throw new UnrecoverableError('no rejoin hook configured (worker.hooks.rejoin): rejoining needs host access to the node');
  const lock = await ctx.changeLock.acquire(jobId, CHANGE_LOCK_TTL_MS);
  if (!lock) throw new Error('the cluster change lock is held by another job');
  try {
    const probes = await ctx.cluster.probeAll({ fast: true });
    const record = await currentAuthority(ctx, probes);
    const node = ctx.cluster.node(job.nodeId);
    const primary = ctx.cluster.node(record.primaryId);
    const sample = sampleOf(probes.get(node.id));
    const progress = await ctx.ledger.progress(record.epoch);
    const verdict = decideRejoin({ nodeId: node.id, record, probe: sample ? { inRecovery: sample.inRecovery, epoch: sample.epoch?.epoch ?? null } : null, candidateId: progress?.candidateId ?? null });
    if (!verdict.rejoin) return { nodeId: node.id, outcome: 'not-needed', primaryId: primary.id, detail: verdict.reason };
    const primarySample = sampleOf(probes.get(primary.id));
    if (!primarySample || primarySample.inRecovery) throw new Error(`the primary ${primary.id} is not reachable as a primary: nothing to rejoin to yet`);
    const following = async () =>
      (
        await ctx.cluster.query<{ n: number }>(
          primary.id,
          "SELECT count(*)::int AS n FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = $1 AND r.state = 'streaming'",
          [node.slotName],
        )
      )[0]!.n > 0;
    if (sample?.inRecovery && (await following())) return { nodeId: node.id, outcome: 'already-following', primaryId: primary.id, detail: `streams from ${primary.id}` };

    checkAbort(ctx, `rejoining ${node.id}`);
    if (!(await lock.extend())) throw new Error('lost the change lock before rejoining');
    await ensureSlot(ctx, primary.id, node.slotName);
    const reportDir = mkdtempSync(join(tmpdir(), 'pgreplica-rejoin-'));
    const reportFile = join(reportDir, 'report.json');
    try {
      const run = await runHook(hook, hookEnv(ctx.config, { ...nodeEnv('NODE', node), ...nodeEnv('PRIMARY', primary), PGREPLICA_REPORT_FILE: reportFile }), ctx.config.worker.hooks.timeoutMs);
      if (run.exitCode !== 0) throw new Error(`rejoin hook failed for ${node.id} (exit ${run.exitCode}${run.timedOut ? ', timed out' : ''}): ${run.output.trim().slice(-500)}`);
      const report = readReport(reportFile);
      ctx.changed.push(`${node.id} rejoined as a replica of ${primary.id} (${report.method ?? 'rejoin hook'})`);
      const streaming = await waitUntil(following, ctx.config.worker.repointTimeoutMs, ctx.signal);
      if (!streaming) throw new Error(`${node.id} did not stream from ${primary.id} within ${ctx.config.worker.repointTimeoutMs} ms after the rejoin hook`);
      const lostTail = report.lostTail ?? null;
      await ctx.publish('node.rejoined', { nodeId: node.id, primaryId: primary.id, method: report.method ?? 'rewind', lostTail }, record.epoch);
      if (lostTail) ctx.logger.warn({ nodeId: node.id, lostTail }, 'rejoined: WAL past the fork was discarded (kept aside where the hook saved it)');
      else ctx.logger.info({ nodeId: node.id, primaryId: primary.id }, 'rejoined as a replica');
      return { nodeId: node.id, outcome: 'rejoined', primaryId: primary.id, detail: `streams from ${primary.id}`, lostTail };
    } finally {
      rmSync(reportDir, { recursive: true, force: true });
    }
  } finally {
    await lock.release().catch(() => {});
  }
}
