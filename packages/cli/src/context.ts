import { connectRedis, duplicateFor } from '@pgreplica/bus';
import { busKeys, type BusKeys, type JobPayloadMap, parseEvent, REMEDIATION_QUEUE, signJob, type Topology } from '@pgreplica/protocol';
import { type Config, ConfigError, loadConfig } from '@pgreplica/runtime';
import { Queue, QueueEvents } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import { NoConfigError, resolveConfigSource } from './local-sandbox.js';

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
  /** Where to look for the local sandbox (`npm start`) when no config is given. @default process.cwd() */
  cwd?: string;
}

/** What every command gets: the config, the bus keys, a Redis connection, where to write. */
export interface Ctx {
  config: Config;
  keys: BusKeys;
  redis: Redis | Cluster;
  io: CliIo;
  json: boolean;
}

/**
 * Loads the config (from `--config`, else `PGREPLICA_CONFIG`, else the local
 * sandbox `npm start` runs — see {@link findLocalSandbox}), connects to Redis
 * and runs `fn`. @throws CliError with the exit code of what went wrong
 */
export async function withCtx<T>(configPath: string | undefined, json: boolean, io: CliIo, fn: (ctx: Ctx) => Promise<T>): Promise<T> {
  let config: Config;
  try {
    const source = resolveConfigSource(configPath, io);
    config = loadConfig(source.path, source.env);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof NoConfigError) throw new CliError(2, err.message);
    throw err;
  }
  const redis = connectRedis(config.redis, 'oneshot', 'pgreplica-cli');
  // ioredis rejects connect() with "Connection is closed."; why it closed (a TLS verification failure, say) comes as an 'error' event.
  let connectionError: Error | undefined;
  redis.on('error', (err: Error) => {
    connectionError ??= err;
  });
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    const cause = connectionError ?? (err as Error);
    const where = describeRedis(config.redis);
    if (isCertificateError(cause)) {
      throw new CliError(3, `Redis at ${where} presented a certificate that does not verify (${cause.message}); check redis.tls.caFile and redis.tls.servername`);
    }
    throw new CliError(3, `Redis at ${where} does not answer (${cause.message}); check that it runs and the address`);
  }
  try {
    return await fn({ config, keys: busKeys(config.cluster), redis, io, json });
  } finally {
    redis.disconnect();
  }
}

/** Where the config says Redis is, for an error message: the URL without its password, the Sentinel master and its sentinels, or the Cluster's seeds. */
export function describeRedis(redis: Config['redis']): string {
  const list = (nodes: { host: string; port: number }[]) => nodes.map((n) => `${n.host}:${n.port}`).join(', ');
  if ('url' in redis) return redis.url.replace(/\/\/[^@/]*@/, '//***@');
  if ('sentinels' in redis) return `the master "${redis.name}" of sentinels ${list(redis.sentinels)}`;
  return `Cluster nodes ${list(redis.cluster)}`;
}

/** Whether `err` is Node's refusal of a server certificate (unknown CA, expired, wrong host name…). */
export function isCertificateError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code === 'ERR_TLS_CERT_ALTNAME_INVALID' || /CERT|SIGNATURE|ISSUER/.test(code));
}

export async function requireLeader(ctx: Ctx): Promise<string> {
  const leader = await ctx.redis.get(ctx.keys.leader);
  if (!leader) throw new CliError(4, `no monitor holds the lease for cluster "${ctx.config.cluster}": start pgreplica-monitor (nothing is being watched)`);
  return leader;
}

export async function loadTopology(ctx: Ctx): Promise<Topology> {
  const raw = await ctx.redis.get(ctx.keys.topology);
  if (!raw) throw new CliError(4, `no topology published for cluster "${ctx.config.cluster}" yet: is pgreplica-monitor running against this Redis?`);
  const parsed = parseEvent(raw, { cluster: ctx.config.cluster, key: ctx.config.busKey });
  if (!parsed.ok) throw new CliError(1, `the stored topology failed verification (${parsed.rejection}): ${parsed.detail}`);
  if (parsed.event.type !== 'snapshot') throw new CliError(1, 'the stored topology is not a snapshot');
  return parsed.event.topology;
}

export function requireNode(ctx: Ctx, id: string): void {
  if (!ctx.config.nodes.some((n) => n.id === id)) {
    throw new CliError(5, `unknown node "${id}"; nodes of cluster ${ctx.config.cluster}: ${ctx.config.nodes.map((n) => n.id).join(', ')}`);
  }
}

export async function runJob<N extends 'promote' | 'switchover' | 'slot-cleanup' | 'rejoin'>(ctx: Ctx, name: N, data: JobPayloadMap[N], id: string, wait: boolean, timeoutMs: number): Promise<unknown> {
  const connection = duplicateFor(ctx.redis, 'bullmq');
  const queue = new Queue(REMEDIATION_QUEUE, { connection, prefix: ctx.keys.queuePrefix });
  const events = wait ? new QueueEvents(REMEDIATION_QUEUE, { connection: duplicateFor(ctx.redis, 'bullmq'), prefix: ctx.keys.queuePrefix }) : undefined;
  try {
    await events?.waitUntilReady();
    const job = await queue.add(name, signJob(name, data, ctx.config.busKey), { jobId: id, attempts: 1, removeOnComplete: 1000, removeOnFail: 1000 });
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
