#!/usr/bin/env node
/**
 * pgreplica — the operator's command line.
 *
 * Exit codes: 0 ok; 1 failed (a job failed or was aborted, or an unexpected
 * error); 2 bad arguments or configuration; 3 Redis does not answer; 4 no
 * monitor holds the lease / no topology yet; 5 unknown node.
 */
import { randomUUID } from 'node:crypto';
import { AuthorityStore, duplicateFor } from '@pgreplica/bus';
import { jobId, parseEvent, parsePrimaryRecord } from '@pgreplica/protocol';
import { databaseSsl } from '@pgreplica/runtime';
import { Command, CommanderError, Option } from 'commander';
import pg from 'pg';
import { CliError, type CliIo, isCertificateError, loadTopology, requireLeader, requireNode, runJob, withCtx } from './context.js';
import { formatEvent, formatStatus, table } from './format.js';

export { CliError } from './context.js';
export type { CliIo } from './context.js';

/** Builds the program; `io` makes it testable in-process. */
export function buildProgram(io: CliIo): Command {
  const program = new Command('pgreplica')
    .description('Operate a pgreplica cluster: status, watch, events, promote, switchover, rejoin, slots, pause, resume.')
    .option('-c, --config <file>', 'the config file (YAML or JSON); default: PGREPLICA_CONFIG, else the sandbox `npm start` runs in this checkout')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) });
  const opts = () => program.opts<{ config?: string }>();
  const jsonOption = () => new Option('--json', 'machine-readable output');

  program
    .command('status')
    .description('nodes with role, status, reason, lag, LSN and since')
    .addOption(jsonOption())
    .action((o: { json?: boolean }) =>
      withCtx(opts().config, o.json === true, io, async (ctx) => {
        const leader = await requireLeader(ctx);
        const topology = await loadTopology(ctx);
        const paused = await new AuthorityStore(ctx.redis, ctx.keys, ctx.config.busKey).paused();
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
        // Redis going away is said, never silent: the subscription reconnects (and says so) until Ctrl-C.
        let lost = false;
        sub.on('error', () => {});
        sub.on('close', () => {
          if (!lost) io.err('pgreplica: lost the connection to Redis; reconnecting (events published meanwhile are missed: see `pgreplica events`)');
          lost = true;
        });
        sub.on('ready', () => {
          if (lost) io.err('pgreplica: reconnected to Redis');
          lost = false;
        });
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
    .option('--dry-run', 'decide and report the verdict, change nothing (waits for it)')
    .option('--wait', 'wait for the job and print its result')
    .option('--timeout-ms <ms>', 'how long --wait waits', '120000')
    .addOption(jsonOption())
    .action((o: { to?: string; dryRun?: boolean; wait?: boolean; timeoutMs: string; json?: boolean }) =>
      withCtx(opts().config, o.json === true, io, async (ctx) => {
        if (o.to) requireNode(ctx, o.to);
        const record = parsePrimaryRecord(await ctx.redis.get(ctx.keys.primary), ctx.config.busKey);
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
        // A dry run is only its verdict: always wait for it.
        await runJob(ctx, 'promote', data, `${jobId('promote', { cluster: ctx.config.cluster, epoch: record.epoch })}.manual.${randomUUID()}`, o.wait === true || o.dryRun === true, Number(o.timeoutMs));
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
        const record = parsePrimaryRecord(await ctx.redis.get(ctx.keys.primary), ctx.config.busKey);
        if (!record) throw new CliError(4, `no primary recorded for cluster "${ctx.config.cluster}"`);
        if (o.to === record.primaryId) throw new CliError(2, `${o.to} is already the primary (epoch ${record.epoch})`);
        const pause = Number(o.maxWritePauseMs);
        if (!Number.isInteger(pause) || pause < 0) throw new CliError(2, '--max-write-pause-ms must be a whole number of milliseconds');
        const data = { cluster: ctx.config.cluster, epoch: record.epoch, candidateId: o.to, maxWritePauseMs: pause };
        await runJob(ctx, 'switchover', data, `switchover.${ctx.config.cluster}.e${record.epoch}.${o.to}.${randomUUID()}`, o.wait === true, Number(o.timeoutMs));
      }),
    );

  program
    .command('rejoin')
    .description('make a deposed primary (or a forked replica) stream from the primary again, through the worker\'s rejoin hook; what it wrote past the fork is reported')
    .argument('<node>', 'the node to rejoin')
    .option('--timeout-ms <ms>', 'how long to wait for the result', '300000')
    .addOption(jsonOption())
    .action((nodeId: string, o: { timeoutMs: string; json?: boolean }) =>
      withCtx(opts().config, o.json === true, io, async (ctx) => {
        requireNode(ctx, nodeId);
        const record = parsePrimaryRecord(await ctx.redis.get(ctx.keys.primary), ctx.config.busKey);
        if (!record) throw new CliError(4, `no primary recorded for cluster "${ctx.config.cluster}": is pgreplica-monitor running?`);
        if (nodeId === record.primaryId) throw new CliError(2, `${nodeId} is the primary (epoch ${record.epoch}): nothing to rejoin`);
        const data = { cluster: ctx.config.cluster, epoch: record.epoch, nodeId, reason: 'pgreplica rejoin' };
        await runJob(ctx, 'rejoin', data, `rejoin.${ctx.config.cluster}.e${record.epoch}.${nodeId}.manual.${randomUUID()}`, true, Number(o.timeoutMs));
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
        const record = parsePrimaryRecord(await ctx.redis.get(ctx.keys.primary), ctx.config.busKey);
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
        await client.connect().catch((err: unknown) => {
          if (!isCertificateError(err)) throw err;
          throw new CliError(1, `PostgreSQL node ${node.id} (${node.host}:${node.port}) presented a certificate that does not verify (${(err as Error).message}); check database.ssl.caFile and database.ssl.servername`);
        });
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
      .description(on ? 'stop automatic failover, slot cleanup and rejoin cluster-wide (fencing a second primary and the synchronous standby set stay on)' : 'allow automatic remediation again')
      .action(() =>
        withCtx(opts().config, false, io, async (ctx) => {
          await new AuthorityStore(ctx.redis, ctx.keys, ctx.config.busKey).setPaused(on);
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
