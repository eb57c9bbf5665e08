import { chownSync, copyFileSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { CommandError, runCommand } from './exec.js';
import { clientSsl, libpqTlsEnv, type NodeContext, type PostgresNode } from './postgres-node.js';

/** WAL a node wrote past where the new primary's timeline forked off its own. */
export interface LostTail {
  fromLsn: string;
  toLsn: string;
  bytes: number;
  /** Counts of WAL records by kind (`Heap/INSERT`) and, for data changes, relation (`Heap/INSERT rel 1663/5/16388`). */
  records: Record<string, number>;
  /** Where its WAL segments were copied before the rejoin discarded them. */
  savedTo: string | null;
}

/** What {@link rejoinAsReplica} did. */
export interface RejoinReport {
  method: 'rewind' | 'clone';
  lostTail: LostTail | null;
}

const LSN = /^([0-9A-F]+)\/([0-9A-F]+)$/i;
const toBig = (lsn: string) => {
  const m = LSN.exec(lsn)!;
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
};
/** PostgreSQL's own spelling of an LSN (pg_waldump pads the low half with zeros). */
const normal = (lsn: string) => {
  const v = toBig(lsn);
  return `${(v >> 32n).toString(16).toUpperCase()}/${(v & 0xffffffffn).toString(16).toUpperCase()}`;
};

/** The LSN where `primary`'s timeline history left `timeline`; null when the primary is still on it. */
async function forkPoint(primary: pg.ClientConfig, timeline: number): Promise<string | null> {
  const client = new pg.Client(primary);
  await client.connect();
  try {
    // The current timeline (the last checkpoint's may still be the old one right after a promotion).
    const { rows } = await client.query<{ tli: number }>("SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS tli");
    const current = rows[0]!.tli;
    if (current === timeline) return null;
    const name = `pg_wal/${current.toString(16).toUpperCase().padStart(8, '0')}.history`;
    const history = (await client.query<{ text: string }>('SELECT pg_read_file($1) AS text', [name])).rows[0]!.text;
    for (const line of history.split('\n')) {
      const [tli, lsn] = line.trim().split(/\s+/);
      if (Number(tli) === timeline && lsn && LSN.test(lsn)) return normal(lsn);
    }
    return null;
  } finally {
    await client.end().catch(() => {});
  }
}

/** Reads the node's own timeline (pg_controldata; the server is stopped). */
async function ownTimeline(node: PostgresNode, ctx: NodeContext): Promise<number> {
  const { stdout } = await runCommand(join(ctx.pgBinDir, 'pg_controldata'), ['-D', node.dataDir], { user: ctx.user, env: { LC_ALL: 'C' } });
  const match = /Latest checkpoint's TimeLineID:\s+(\d+)/.exec(stdout);
  return match ? Number(match[1]) : 1;
}

/**
 * What the node wrote past the fork, from its own WAL (pg_waldump): the
 * range, record counts by kind and relation, and a copy of the segments
 * (under `saveDir`) before a rewind or a clone discards them.
 */
async function lostTail(node: PostgresNode, ctx: NodeContext, primary: pg.ClientConfig, saveDir: string): Promise<LostTail | null> {
  const timeline = await ownTimeline(node, ctx);
  const fork = await forkPoint(primary, timeline);
  if (!fork) return null;
  let stdout = '';
  try {
    ({ stdout } = await runCommand(join(ctx.pgBinDir, 'pg_waldump'), ['-p', join(node.dataDir, 'pg_wal'), '-t', String(timeline), '-s', fork], { user: ctx.user }));
  } catch (err) {
    // pg_waldump exits non-zero at the end of valid WAL, after printing every record.
    if (!(err instanceof CommandError)) throw err;
    stdout = err.stdout;
  }
  const records: Record<string, number> = {};
  let last: string | null = null;
  for (const line of stdout.split('\n')) {
    const m = /^rmgr: (\S+)\s.*?lsn: ([0-9A-F]+\/[0-9A-F]+), prev [^,]+, desc: (\S+)(.*)$/i.exec(line);
    if (!m) continue;
    last = normal(m[2]!);
    // The rewind's own records (a checkpoint at shutdown) are not writes anyone made.
    if (m[1] === 'XLOG') continue;
    // INSERT+INIT (the first row of a new page) is an INSERT.
    const kind = `${m[1]}/${m[3]!.split('+')[0]}`;
    records[kind] = (records[kind] ?? 0) + 1;
    const rel = /rel (\d+\/\d+\/\d+)/.exec(m[4]!);
    if (rel && (m[1] === 'Heap' || m[1] === 'Heap2')) records[`${kind} rel ${rel[1]}`] = (records[`${kind} rel ${rel[1]}`] ?? 0) + 1;
  }
  if (last === null || Object.keys(records).length === 0) return null;
  mkdirSync(saveDir, { recursive: true });
  const walDir = join(node.dataDir, 'pg_wal');
  const tliHex = timeline.toString(16).toUpperCase().padStart(8, '0');
  const firstSegment = toBig(fork) / (16n * 1024n * 1024n);
  for (const file of readdirSync(walDir)) {
    if (!/^[0-9A-F]{24}$/.test(file) || !file.startsWith(tliHex)) continue;
    const segment = (BigInt(`0x${file.slice(8, 16)}`) << 8n) | BigInt(`0x${file.slice(16, 24)}`);
    if (segment >= firstSegment) copyFileSync(join(walDir, file), join(saveDir, file));
  }
  if (ctx.user.switchUser) chownSync(saveDir, ctx.user.uid, ctx.user.gid);
  return { fromLsn: fork, toLsn: last, bytes: Math.max(0, Number(toBig(last) - toBig(fork))), records, savedTo: saveDir };
}

/**
 * Makes a node a replica of `primary` again: stops it (if it runs), keeps
 * aside and reports what it wrote past the fork, rewinds it with pg_rewind —
 * or, when a rewind is impossible, clones it again with the project's
 * replica-setup.sh — then starts it as a standby streaming through its slot.
 */
export async function rejoinAsReplica(
  node: PostgresNode,
  ctx: NodeContext,
  target: { host: string; port: number },
  replication: { user: string; password: string },
  options: { baseDir: string; setupScript: string },
): Promise<RejoinReport> {
  await node.stop('fast');
  const admin: pg.ClientConfig = { host: target.host, port: target.port, user: ctx.superuser.name, password: ctx.superuser.password, database: ctx.database, ssl: clientSsl(ctx) };
  // pg_rewind reads the source's timeline from its control file, which a freshly
  // promoted primary updates only at its next checkpoint: without one, it finds
  // "no rewind required" and the node cannot follow the new timeline.
  const checkpoint = new pg.Client(admin);
  await checkpoint.connect();
  try {
    await checkpoint.query('CHECKPOINT');
  } finally {
    await checkpoint.end().catch(() => {});
  }
  const saveDir = join(options.baseDir, 'lost-tail', `${node.id}-${new Date().toISOString().replaceAll(':', '')}`);
  const tail = await lostTail(node, ctx, admin, saveDir);
  try {
    await node.rejoin(target, replication);
    return { method: 'rewind', lostTail: tail };
  } catch (err) {
    if (!existsSync(options.setupScript)) throw err;
  }
  // pg_rewind could not (no common history left, WAL recycled): a new clone.
  await node.stop('immediate').catch(() => {});
  rmSync(node.dataDir, { recursive: true, force: true });
  await runCommand('bash', [options.setupScript, '--yes', target.host, String(target.port), replication.user], {
    user: ctx.user,
    env: {
      PGPASSWORD: replication.password,
      PG_BINDIR: ctx.pgBinDir,
      REPLICA_DATA_DIR: node.dataDir,
      REPLICA_SLOT_NAME: node.slotName,
      REPLICA_APPLICATION_NAME: node.slotName,
      REPLICA_LOG_FILE: join(ctx.logDir, `setup-${node.id}.log`),
      ...libpqTlsEnv(ctx),
    },
    timeoutMs: 300_000,
  });
  node.writeNodeConf();
  await node.start();
  return { method: 'clone', lostTail: tail };
}
