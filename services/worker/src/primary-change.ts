import type { ProbeResult } from '@pgreplica/probe';
import type { PrimaryRecord } from '@pgreplica/protocol';
import { sampleOf } from './cluster-access.js';
import type { JobContext } from './context.js';
import { repoint, type RepointOutcome } from './repoint.js';

export { ensureSlot } from './repoint.js';

/**
 * The steps a failover and a switchover share: promote a replica, move the
 * primary record to it, repoint the rest, fence by configuration. Each one
 * records what it changed in `ctx.changed`.
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
 * Moves the primary record from `record` to `newPrimaryId` with an epoch
 * bump (compare-and-set: one change per epoch) and publishes
 * primary.changed. Null when the epoch moved on meanwhile.
 */
export async function recordNewPrimary(
  ctx: JobContext,
  record: PrimaryRecord,
  newPrimaryId: string,
  cause: 'failover' | 'switchover' | 'manual',
): Promise<PrimaryRecord | null> {
  const [identity] = await ctx.cluster.query<{ sysid: string }>(newPrimaryId, 'SELECT system_identifier::text AS sysid FROM pg_control_system()');
  const next = await ctx.authority.bumpEpoch(record.epoch, {
    primaryId: newPrimaryId,
    systemIdentifier: identity?.sysid ?? record.systemIdentifier,
    at: new Date().toISOString(),
    cause,
    previousPrimaryId: record.primaryId,
  });
  if (!next) return null;
  ctx.changed.push(`primary record: epoch ${next.epoch}, primary ${newPrimaryId}`);
  await ctx.publish('primary.changed', { fromId: record.primaryId, toId: newPrimaryId, cause }, next.epoch);
  return next;
}

/** Repoints every replica that answered `probes` (but the new and the old primary) to `newPrimaryId`. */
export async function repointReplicas(ctx: JobContext, probes: ReadonlyMap<string, ProbeResult>, newPrimaryId: string, oldPrimaryId: string): Promise<RepointOutcome[]> {
  const newPrimary = ctx.cluster.node(newPrimaryId);
  const outcomes: RepointOutcome[] = [];
  for (const node of ctx.cluster.nodes) {
    if (node.id === newPrimaryId || node.id === oldPrimaryId || !sampleOf(probes.get(node.id))?.inRecovery) continue;
    outcomes.push(await repoint(node, newPrimary, ctx).catch((err: unknown) => ({ nodeId: node.id, streaming: false, detail: (err as Error).message })));
  }
  return outcomes;
}

/** Makes new transactions on a node read-only by default (or not), through ALTER SYSTEM and a reload. */
export async function setReadOnly(ctx: JobContext, nodeId: string, on: boolean): Promise<void> {
  await ctx.cluster.withClient(nodeId, async (client) => {
    await client.query(on ? 'ALTER SYSTEM SET default_transaction_read_only = on' : 'ALTER SYSTEM RESET default_transaction_read_only');
    await client.query('SELECT pg_reload_conf()');
  });
  ctx.changed.push(on ? `made ${nodeId} read-only (default_transaction_read_only)` : `made ${nodeId} writable again`);
}
