#!/usr/bin/env node
/**
 * pgreplica — the operator's command line.
 *
 * Exit codes: 0 ok; 1 failed (a job failed or was aborted, or an unexpected
 * error); 2 bad arguments or configuration; 3 Redis does not answer; 4 no
 * monitor holds the lease / no topology yet; 5 unknown node.
 */
import { randomUUID } from 'node:crypto';
import { AuthorityStore, connectRedis, duplicateFor } from '@pgreplica/bus';
import {
  type BusEvent,
  busKeys,
  type BusKeys,
  jobId,
  type JobPayloadMap,
  type NodeState,
  parseEvent,
  parsePrimaryRecord,
  REMEDIATION_QUEUE,
  type Topology,
} from '@pgreplica/protocol';
import { type Config, ConfigError, databaseSsl, loadConfig } from '@pgreplica/runtime';
import { Queue, QueueEvents } from 'bullmq';
import { Command, CommanderError, Option } from 'commander';
import type { Cluster, Redis } from 'ioredis';
import pg from 'pg';

/** An error with the exit code it means. */
export class CliError extends Error {
  override readonly name = 'CliError';
  readonly exitCode: number;

  constructor(exitCode: number, message: string) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** Where the CLI writes; injectable for tests. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
  /** Resolves when the user interrupts `watch`. */
  interrupted?: Promise<void>;
}

interface Ctx {
  config: Config;
  keys: BusKeys;
  redis: Redis | Cluster;
  io: CliIo;
  json: boolean;
}

async function withCtx<T>(configPath: string, json: boolean, io: CliIo, fn: (ctx: Ctx) => Promise<T>): Promise<T> {
  let config: Config;
  try {
    config = loadConfig(configPath, io.env);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(2, err.message);
    throw err;
  }
  const redis = connectRedis(config.redis, 'oneshot', 'pgreplica-cli');
  redis.on('error', () => {});
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    const where = 'url' in config.redis ? config.redis.url.replace(/\/\/[^@/]*@/, '//***@') : 'the configured Redis';
    throw new CliError(3, `Redis at ${where} does not answer (${(err as Error).message}); check that it runs and the address`);
  }
  try {
    return await fn({ config, keys: busKeys(config.cluster), redis, io, json });
  } finally {
    redis.disconnect();
  }
}

async function requireLeader(ctx: Ctx): Promise<string> {
  const leader = await ctx.redis.get(ctx.keys.leader);
  if (!leader) throw new CliError(4, `no monitor holds the lease for cluster "${ctx.config.cluster}": start pgreplica-monitor (nothing is being watched)`);
  return leader;
}

async function loadTopology(ctx: Ctx): Promise<Topology> {
  const raw = await ctx.redis.get(ctx.keys.topology);
  if (!raw) throw new CliError(4, `no topology published for cluster "${ctx.config.cluster}" yet: is pgreplica-monitor running against this Redis?`);
  const parsed = parseEvent(raw, { cluster: ctx.config.cluster, key: ctx.config.busKey });
  if (!parsed.ok) throw new CliError(1, `the stored topology failed verification (${parsed.rejection}): ${parsed.detail}`);
  if (parsed.event.type !== 'snapshot') throw new CliError(1, 'the stored topology is not a snapshot');
  return parsed.event.topology;
}

function requireNode(ctx: Ctx, id: string): void {
  if (!ctx.config.nodes.some((n) => n.id === id)) {
    throw new CliError(5, `unknown node "${id}"; nodes of cluster ${ctx.config.cluster}: ${ctx.config.nodes.map((n) => n.id).join(', ')}`);
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

function age(iso: string): string {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
}

function formatStatus(t: Topology, leader: string, paused: boolean): string {
  const rows = [['NODE', 'ROLE', 'STATUS', 'REASON', 'LAG', 'LAG BYTES', 'LSN', 'SINCE']];
  for (const n of t.nodes) {
    rows.push([
      n.id + (n.id === t.primaryId ? '*' : ''),
      n.role,
      n.status,
      n.reason,
      n.lagMs === null ? '-' : `${n.lagMs}ms`,
      n.lagBytes === null ? '-' : String(n.lagBytes),
      n.replayLsn ?? '-',
      age(n.since),
    ]);
  }
  return `cluster ${t.cluster}, epoch ${t.epoch}, primary ${t.primaryId ?? '?'}, monitor ${leader}, observed ${age(t.observedAt)} ago${paused ? ', AUTOMATIC REMEDIATION PAUSED' : ''}\n${table(rows)}`;
}

function formatEvent(e: BusEvent): string {
  const base = `${e.at} ${e.type.padEnd(20)} t${e.term}/s${e.seq} e${e.epoch}`;
  switch (e.type) {
    case 'node.status':
      return `${base} ${e.nodeId}: ${e.from} -> ${e.to} (${e.reason}${e.detail ? `: ${e.detail}` : ''})`;
    case 'primary.changed':
      return `${base} ${e.fromId ?? '?'} -> ${e.toId} (${e.cause})`;
    case 'snapshot':
      return `${base} primary ${e.topology.primaryId}, ${e.topology.nodes.map((n: NodeState) => `${n.id}=${n.status}`).join(' ')}`;
    case 'failover.suppressed':
    case 'failover.aborted':
      return `${base} ${e.failedPrimaryId}: ${e.reason}`;
    case 'failover.finished':
      return `${base} ${e.fromId} -> ${e.toId}, lost ${e.lostBytes ?? '?'} bytes, ${JSON.stringify(e.phasesMs)}`;
    case 'switchover.finished':
      return `${base} ${e.fromId} -> ${e.toId} ok=${e.ok}, write pause ${Math.round(e.writePauseMs)} ms${e.detail ? `: ${e.detail}` : ''}`;
    case 'slot.dropped':
      return `${base} ${e.slotName}${e.dryRun ? ' (dry run)' : ''}, retained ${e.retainedBytesBefore} -> ${e.retainedBytesAfter} bytes`;
    case 'remediation.failed':
      return `${base} ${e.job} ${e.jobId}: ${e.error}`;
    default:
      return base;
  }
}

async function runJob<N extends 'promote' | 'switchover' | 'slot-cleanup'>(ctx: Ctx, name: N, data: JobPayloadMap[N], id: string, wait: boolean, timeoutMs: number): Promise<unknown> {
  const connection = duplicateFor(ctx.redis, 'bullmq');
  const queue = new Queue(REMEDIATION_QUEUE, { connection, prefix: ctx.keys.queuePrefix });
  const events = wait ? new QueueEvents(REMEDIATION_QUEUE, { connection: duplicateFor(ctx.redis, 'bullmq'), prefix: ctx.keys.queuePrefix }) : undefined;
  try {
    await events?.waitUntilReady();
    const job = await queue.add(name, data, { jobId: id, attempts: 1, removeOnComplete: 1000, removeOnFail: 1000 });
    if (!wait) {
      ctx.io.out(ctx.json ? JSON.stringify({ enqueued: name, jobId: job.id }) : `enqueued ${name} job ${job.id}`);
      return undefined;
    }
    try {
      const value = (await job.waitUntilFinished(events!, timeoutMs)) as { result?: { outcome?: string; reason?: string } };
      ctx.io.out(ctx.json ? JSON.stringify(value) : `${name} ${job.id}: ${JSON.stringify(value?.result ?? value, null, 2)}`);
      const outcome = value?.result?.outcome;
      if (outcome === 'aborted' || outcome === 'suppressed') throw new CliError(1, `${name} ${outcome}: ${value?.result?.reason ?? ''}`);
      return value;
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new CliError(1, `${name} job ${job.id} failed: ${(err as Error).message}`);
    }
  } finally {
    await events?.close().catch(() => {});
    await queue.close().catch(() => {});
    connection.disconnect();
  }
}

/** Builds the program; `io` makes it testable in-process. */
export function buildProgram(io: CliIo): Command {
  const program = new Command('pgreplica')
    .description('Operate a pgreplica cluster: status, events, failover, switchover, slots, pause.')
    .requiredOption('-c, --config <file>', 'the monitor/worker config file (YAML or JSON)', io.env.PGREPLICA_CONFIG)
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) });
  const opts = () => program.opts<{ config: string }>();
  const jsonOption = () => new Option('--json', 'machine-readable output');

  program
    .command('status')
    .description('nodes with role, status, reason, lag, LSN and since')
    .addOption(jsonOption())
    .action((o: { json?: boolean }) =>
      withCtx(opts().config, o.json === true, io, async (ctx) => {
        const leader = await requireLeader(ctx);
        const topology = await loadTopology(ctx);
        const paused = await new AuthorityStore(ctx.redis, ctx.keys).paused();
        io.out(ctx.json ? JSON.stringify({ leader, paused, topology }) : formatStatus(topology, leader, paused));
      }),
    );

  program
    .command('watch')
    .description('live events until Ctrl-C')
    .addOption(jsonOption())
    .action((o: { json?: boolean }) =>
      withCtx(opts().config, o.json === true, io, async (ctx) => {
        await requireLeader(ctx);
        const sub = duplicateFor(ctx.redis, 'subscriber');
        sub.on('error', () => {});
        sub.on('message', (_c: string, message: string) => {
          const parsed = parseEvent(message, { cluster: ctx.config.cluster, key: ctx.config.busKey });
          if (!parsed.ok) io.err(`dropped an event that failed verification: ${parsed.rejection}`);
          else io.out(ctx.json ? JSON.stringify(parsed.event) : formatEvent(parsed.event));
        });
        await sub.subscribe(ctx.keys.events);
        await (io.interrupted ?? new Promise<void>((resolve) => process.once('SIGINT', () => resolve())));
        sub.disconnect();
      }),
    );

  program
    .command('events')
    .description('past events from the stream')
    .requiredOption('--since <time>', 'ISO time, or a duration back from now: 30s, 15m, 2h, 1d')
    .addOption(jsonOption())
    .action((o: { since: string; json?: boolean }) =>
      withCtx(opts().config, o.json === true, io, async (ctx) => {
        const rel = /^(\d+)(s|m|h|d)$/.exec(o.since);
        const from = rel ? Date.now() - Number(rel[1]) * { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 }[rel[2] as 's' | 'm' | 'h' | 'd'] : Date.parse(o.since);
        if (!Number.isFinite(from)) throw new CliError(2, `--since: "${o.since}" is neither an ISO time nor a duration like 15m`);
        const entries = (await ctx.redis.xrange(ctx.keys.stream, String(Math.floor(from)), '+')) as [string, string[]][];
        for (const [, fields] of entries) {
          const raw = fields[fields.indexOf('event') + 1];
          if (!raw) continue;
          const parsed = parseEvent(raw, { cluster: ctx.config.cluster, key: ctx.config.busKey });
          if (parsed.ok) io.out(ctx.json ? JSON.stringify(parsed.event) : formatEvent(parsed.event));
        }
      }),
    );

  program
    .command('promote')
    .description('fail over: promote a replica (the worker re-checks that the primary is gone)')
    .option('--to <id>', 'the replica to promote (default: the most advanced)')
    .option('--dry-run', 'decide and report, change nothing')
    .option('--wait', 'wait for the job and print its result')
    .option('--timeout-ms <ms>', 'how long --wait waits', '120000')
    .addOption(jsonOption())
    .action((o: { to?: string; dryRun?: boolean; wait?: boolean; timeoutMs: string; json?: boolean }) =>
      withCtx(opts().config, o.json === true, io, async (ctx) => {
        if (o.to) requireNode(ctx, o.to);
        const record = parsePrimaryRecord(await ctx.redis.get(ctx.keys.primary));
        if (!record) throw new CliError(4, `no primary recorded for cluster "${ctx.config.cluster}": is pgreplica-monitor running?`);
        if (o.to === record.primaryId) throw new CliError(2, `${o.to} is already the primary (epoch ${record.epoch})`);
        const data = {
          cluster: ctx.config.cluster,
          epoch: record.epoch,
          failedPrimaryId: record.primaryId,
          ...(o.to ? { candidateId: o.to } : {}),
          automatic: false,
          dryRun: o.dryRun === true,
          detectedAt: new Date().toISOString(),
        };
        // Manual jobs get their own id; the worker's compare-and-set on the epoch still allows one promotion per epoch.
        await runJob(ctx, 'promote', data, `${jobId('promote', { cluster: ctx.config.cluster, epoch: record.epoch })}.manual.${randomUUID()}`, o.wait === true, Number(o.timeoutMs));
      }),
    );

  program
    .command('switchover')
    .description('planned change of primary without losing acknowledged writes')
    .requiredOption('--to <id>', 'the replica to promote')
    .option('--max-write-pause-ms <ms>', 'how long routers may hold writes', '5000')
    .option('--wait', 'wait for the job and print its result')
    .option('--timeout-ms <ms>', 'how long --wait waits', '120000')
    .addOption(jsonOption())
    .action((o: { to: string; maxWritePauseMs: string; wait?: boolean; timeoutMs: string; json?: boolean }) =>
      withCtx(opts().config, o.json === true, io, async (ctx) => {
        requireNode(ctx, o.to);
        await requireLeader(ctx);
        const record = parsePrimaryRecord(await ctx.redis.get(ctx.keys.primary));
        if (!record) throw new CliError(4, `no primary recorded for cluster "${ctx.config.cluster}"`);
        if (o.to === record.primaryId) throw new CliError(2, `${o.to} is already the primary (epoch ${record.epoch})`);
        const pause = Number(o.maxWritePauseMs);
        if (!Number.isInteger(pause) || pause < 0) throw new CliError(2, '--max-write-pause-ms must be a whole number of milliseconds');
        const data = { cluster: ctx.config.cluster, epoch: record.epoch, candidateId: o.to, maxWritePauseMs: pause };
        await runJob(ctx, 'switchover', data, `switchover.${ctx.config.cluster}.e${record.epoch}.${o.to}.${randomUUID()}`, o.wait === true, Number(o.timeoutMs));
      }),
    );

  program
    .command('slots')
    .description('replication slots on the primary; --cleanup runs the slot-cleanup job')
    .option('--cleanup', 'drop inactive slots over the configured limit (through the worker)')
    .option('--dry-run', 'with --cleanup: report, drop nothing')
    .addOption(jsonOption())
    .action((o: { cleanup?: boolean; dryRun?: boolean; json?: boolean }) =>
      withCtx(opts().config, o.json === true, io, async (ctx) => {
        const record = parsePrimaryRecord(await ctx.redis.get(ctx.keys.primary));
        if (!record) throw new CliError(4, `no primary recorded for cluster "${ctx.config.cluster}"`);
        if (o.dryRun && !o.cleanup) throw new CliError(2, '--dry-run goes with --cleanup');
        if (o.cleanup) {
          const data = { cluster: ctx.config.cluster, epoch: record.epoch, dryRun: o.dryRun === true, reason: 'pgreplica slots --cleanup' };
          await runJob(ctx, 'slot-cleanup', data, `slot-cleanup.${ctx.config.cluster}.e${record.epoch}.manual.${randomUUID()}`, true, 60_000);
          return;
        }
        const node = ctx.config.nodes.find((n) => n.id === record.primaryId)!;
        const client = new pg.Client({
          host: node.host,
          port: node.port,
          user: ctx.config.database.user,
          password: ctx.config.databasePassword,
          database: ctx.config.database.database,
          ssl: databaseSsl(ctx.config),
          connectionTimeoutMillis: 3_000,
        });
        client.on('error', () => {});
        await client.connect();
        try {
          const { rows } = await client.query<{ slot_name: string; active: boolean; wal_status: string | null; retained_bytes: string | null }>(
            'SELECT slot_name, active, wal_status, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::text AS retained_bytes FROM pg_replication_slots ORDER BY slot_name',
          );
          if (ctx.json) io.out(JSON.stringify(rows.map((r) => ({ ...r, retained_bytes: r.retained_bytes === null ? null : Number(r.retained_bytes) }))));
          else io.out(table([['SLOT', 'ACTIVE', 'WAL STATUS', 'RETAINED BYTES'], ...rows.map((r) => [r.slot_name, String(r.active), r.wal_status ?? '-', r.retained_bytes ?? '-'])]));
        } finally {
          await client.end().catch(() => {});
        }
      }),
    );

  for (const [name, on] of [
    ['pause', true],
    ['resume', false],
  ] as const) {
    program
      .command(name)
      .description(on ? 'stop all automatic remediation cluster-wide' : 'allow automatic remediation again')
      .action(() =>
        withCtx(opts().config, false, io, async (ctx) => {
          await new AuthorityStore(ctx.redis, ctx.keys).setPaused(on);
          io.out(on ? `automatic remediation paused for cluster ${ctx.config.cluster}` : `automatic remediation resumed for cluster ${ctx.config.cluster}`);
        }),
      );
  }
  return program;
}

/** Runs the CLI; resolves with the exit code. */
export async function run(argv: string[], io: CliIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') return 0;
      return 2;
    }
    if (err instanceof CliError) {
      io.err(`pgreplica: ${err.message}`);
      return err.exitCode;
    }
    io.err(`pgreplica: ${(err as Error).message}`);
    return 1;
  }
}

const isMain = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain) {
  run(process.argv.slice(2), {
    out: (t) => process.stdout.write(`${t}\n`),
    err: (t) => process.stderr.write(`${t}\n`),
    env: process.env,
  }).then((code) => process.exit(code));
}
