import { synchronousStandbyNames } from '@pgreplica/decisions';
import type { PrimaryRecord, SyncStandbysJob } from '@pgreplica/protocol';
import { currentAuthority } from '../authority.js';
import { CHANGE_LOCK_TTL_MS, type JobContext } from '../context.js';

/** What a sync-standbys job did. */
export interface SyncStandbysResult {
  outcome: 'set' | 'unchanged' | 'not-needed';
  members: string[];
  synchronousStandbyNames?: string;
  reason?: string;
}

const STANDBYS = `
SELECT application_name AS app FROM pg_stat_replication WHERE state = 'streaming'`;

/**
 * Makes the primary's synchronous standbys (`ANY 1 (…)`) the configured
 * replicas that stream from it now, never tagged `nofailover` — dropping dead
 * ones so writes do not block, adding ones that came back. The set is
 * recorded per epoch, before it grows and after it shrinks (with the
 * primary's position then: a commit acknowledged before may be on a member
 * that left, so a failover candidate must have reached it), so a failover
 * always knows who may hold an acknowledged commit.
 */
export async function applySyncStandbys(ctx: JobContext, record: PrimaryRecord): Promise<SyncStandbysResult> {
  return ctx.cluster.withClient(record.primaryId, async (client) => {
    const streaming = new Set((await client.query<{ app: string }>(STANDBYS)).rows.map((r) => r.app));
    const members = ctx.cluster.nodes.filter((n) => n.id !== record.primaryId && !n.tags.includes('nofailover') && streaming.has(n.slotName));
    const names = synchronousStandbyNames(members.map((m) => m.slotName));
    const ids = members.map((m) => m.id).sort();
    const [current] = (await client.query<{ names: string }>("SELECT current_setting('synchronous_standby_names') AS names")).rows;
    const previous = await ctx.ledger.syncRecord(record.epoch);
    if (current?.names === names && previous && sameMembers(previous.members, ids)) return { outcome: 'unchanged', members: ids, synchronousStandbyNames: names };
    // Growing: record first (a member that acknowledges must be known to the failover).
    const union = [...new Set([...(previous?.members ?? []), ...ids])].sort();
    await ctx.ledger.setSyncRecord(record.epoch, { members: union, floorLsn: previous?.floorLsn ?? null });
    await client.query(`ALTER SYSTEM SET synchronous_standby_names = ${client.escapeLiteral(names)}`);
    await client.query('SELECT pg_reload_conf()');
    ctx.changed.push(`synchronous_standby_names on ${record.primaryId}: ${names === '' ? "'' (no replica streams)" : names}`);
    // Shrinking: from here commits need the remaining members; what was acknowledged before is at most here.
    const shrank = previous?.members.some((m) => !ids.includes(m)) ?? false;
    const [pos] = (await client.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn')).rows;
    await ctx.ledger.setSyncRecord(record.epoch, { members: ids, floorLsn: shrank ? (pos?.lsn ?? null) : (previous?.floorLsn ?? null) });
    ctx.logger.info({ primaryId: record.primaryId, members: ids, synchronousStandbyNames: names }, 'synchronous standbys set');
    return { outcome: 'set', members: ids, synchronousStandbyNames: names };
  });
}

function sameMembers(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().every((x, i) => x === [...b].sort()[i]);
}

/** The `sync-standbys` job: under the change lock, for its own epoch only. */
export async function syncStandbys(job: SyncStandbysJob, ctx: JobContext, jobId: string): Promise<SyncStandbysResult> {
  if (ctx.config.failover.durability !== 'synchronous') return { outcome: 'not-needed', members: [], reason: 'failover.durability is async' };
  const lock = await ctx.changeLock.acquire(jobId, CHANGE_LOCK_TTL_MS);
  if (!lock) throw new Error('the cluster change lock is held by another job');
  try {
    const record = await currentAuthority(ctx, await ctx.cluster.probeAll({ fast: true }));
    if (record.epoch !== job.epoch) return { outcome: 'not-needed', members: [], reason: `the cluster is at epoch ${record.epoch}, the job was for ${job.epoch}` };
    return await applySyncStandbys(ctx, record);
  } finally {
    await lock.release().catch(() => {});
  }
}
