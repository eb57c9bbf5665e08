import pg from 'pg';
import type { NodeAddress } from './cluster-access.js';
import { checkAbort, type JobContext, waitUntil } from './context.js';

/** Creates a physical slot on `nodeId` unless it exists. */
export async function ensureSlot(ctx: JobContext, nodeId: string, slotName: string): Promise<void> {
  await ctx.cluster.query(
    nodeId,
    'SELECT pg_create_physical_replication_slot($1, true) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)',
    [slotName],
  );
}

/** Outcome of repointing one replica. */
export interface RepointOutcome {
  nodeId: string;
  streaming: boolean;
  detail: string;
}

function conninfo(primary: NodeAddress, replicaId: string, ctx: JobContext): string {
  const parts = [`host=${primary.host}`, `port=${primary.port}`, `user=${ctx.config.worker.replication.user}`, `application_name=${replicaId}`];
  // The password travels in primary_conninfo like pg_basebackup -R writes it (postgresql.auto.conf, mode 600).
  if (ctx.config.replicationPassword) parts.push(`password='${ctx.config.replicationPassword.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`);
  return parts.join(' ');
}

/**
 * Makes a replica stream from `primary`: its physical slot created on the
 * new primary (if missing), `primary_conninfo` and `primary_slot_name` set
 * with ALTER SYSTEM, configuration reloaded (PostgreSQL 13+ restarts the WAL
 * receiver), then a bounded wait until the new primary sees it streaming.
 */
export async function repoint(replica: NodeAddress, primary: NodeAddress, ctx: JobContext): Promise<RepointOutcome> {
  checkAbort(ctx, `repointing ${replica.id}`);
  await ensureSlot(ctx, primary.id, replica.slotName);
  await ctx.cluster.withClient(replica.id, async (client) => {
    const info = conninfo(primary, replica.id, ctx);
    await client.query(`ALTER SYSTEM SET primary_conninfo = ${pg.escapeLiteral(info)}`);
    await client.query(`ALTER SYSTEM SET primary_slot_name = ${pg.escapeLiteral(replica.slotName)}`);
    await client.query('SELECT pg_reload_conf()');
  });
  ctx.changed.push(`repointed ${replica.id} to ${primary.id} (primary_conninfo, slot ${replica.slotName})`);
  const streaming = await waitUntil(
    async () =>
      (
        await ctx.cluster.query<{ n: number }>(
          primary.id,
          "SELECT count(*)::int AS n FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = $1 AND r.state = 'streaming'",
          [replica.slotName],
        )
      )[0]!.n > 0,
    ctx.config.worker.repointTimeoutMs,
    ctx.signal,
  );
  return { nodeId: replica.id, streaming, detail: streaming ? 'streaming' : `not streaming after ${ctx.config.worker.repointTimeoutMs} ms` };
}
