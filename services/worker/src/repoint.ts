import pg from 'pg';
import type { NodeAddress } from './cluster-access.js';
import { formatConninfo, parseConninfo, TLS_CONNINFO_KEYWORDS } from './conninfo.js';
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

/** Keywords of the replica's current primary_conninfo a repoint keeps: its TLS settings and its passfile. */
const KEPT_KEYWORDS: ReadonlySet<string> = new Set([...TLS_CONNINFO_KEYWORDS, 'passfile']);

/**
 * The replica's new primary_conninfo: the new primary's address, the
 * replication role, the replica's slot name as application_name (what
 * synchronous_standby_names matches), and — kept from the current one — its
 * TLS settings (so a failover never downgrades replication to unverified TLS
 * or plain text) and its passfile; `worker.replication.sslmode` /
 * `sslrootcert` / `passfile` override them. Never a password: the statement
 * that sets it lands in the server log with log_statement = ddl and in
 * pg_stat_activity.
 */
export function conninfo(primary: NodeAddress, replica: Pick<NodeAddress, 'slotName'>, config: JobContext['config'], current: string): string {
  const entries = new Map<string, string>([
    ['host', primary.host],
    ['port', String(primary.port)],
    ['user', config.worker.replication.user],
    ['application_name', replica.slotName],
  ]);
  try {
    for (const [key, value] of parseConninfo(current)) if (KEPT_KEYWORDS.has(key)) entries.set(key, value);
  } catch {
    // Unreadable: only the configured settings apply.
  }
  const { sslmode, sslrootcert, passfile } = config.worker.replication;
  if (sslmode !== undefined) entries.set('sslmode', sslmode);
  if (sslrootcert !== undefined) entries.set('sslrootcert', sslrootcert);
  if (passfile !== undefined) entries.set('passfile', passfile);
  return formatConninfo(entries);
}

/**
 * Makes a replica stream from `primary`: its physical slot created on the
 * new primary (if missing), `primary_conninfo` and `primary_slot_name` set
 * with ALTER SYSTEM, configuration reloaded (PostgreSQL 13+ restarts the WAL
 * receiver), then a bounded wait (`waitMs`) until the new primary sees it
 * streaming. `primary` may be a standby too (cascading).
 */
export async function repoint(replica: NodeAddress, primary: NodeAddress, ctx: JobContext, waitMs: number = ctx.config.worker.repointTimeoutMs): Promise<RepointOutcome> {
  checkAbort(ctx, `repointing ${replica.id}`);
  await ensureSlot(ctx, primary.id, replica.slotName);
  await ctx.cluster.withClient(replica.id, async (client) => {
    // Reading it needs superuser or pg_read_all_settings; without, the configured settings only.
    const current = await client.query<{ primary_conninfo: string }>('SHOW primary_conninfo').then((r) => r.rows[0]?.primary_conninfo ?? '', () => '');
    const info = conninfo(primary, replica, ctx.config, current);
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
    waitMs,
    ctx.signal,
  );
  return { nodeId: replica.id, streaming, detail: streaming ? 'streaming' : `not streaming after ${waitMs} ms` };
}
