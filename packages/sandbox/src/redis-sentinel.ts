import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SandboxError } from './errors.js';
import { pollUntil } from './poll.js';
import { freePort } from './ports.js';
import { parseInfo, type RespValue } from './redis-call.js';
import { RedisServer } from './redis-server.js';

/** Options of a sandbox's Redis Sentinel group (`startSandbox({ redis: 'sentinel' })`). */
export interface RedisSentinelOptions {
  /**
   * Replicas of the Redis master.
   * @default 1
   */
  replicas?: number;
  /**
   * Sentinels watching it; a failover needs a majority of them (the quorum is that majority too).
   * @default 3
   */
  sentinels?: number;
  /**
   * Name of the master the sentinels watch (`redis.name` in pgreplica's config).
   * @default 'pgreplica'
   */
  name?: string;
  /**
   * `sentinel down-after-milliseconds`: silence after which a sentinel thinks
   * the master is down. Sentinels ping every second: at 1 s or less, a
   * sentinel that has just switched to a new master can take it for down
   * before its first ping returns, and fail over again.
   * @default 2_000
   */
  downAfterMs?: number;
  /**
   * `sentinel failover-timeout`.
   * @default 5_000
   */
  failoverTimeoutMs?: number;
}

/** Defaults of {@link RedisSentinelOptions}. */
export const DEFAULT_REDIS_SENTINEL_OPTIONS = { replicas: 1, sentinels: 3, name: 'pgreplica', downAfterMs: 2_000, failoverTimeoutMs: 5_000 } as const;

/** Fields of a `SENTINEL MASTER` reply (a flat list of names and values). */
function fieldsOf(reply: RespValue): Record<string, string> {
  const fields: Record<string, string> = {};
  if (!Array.isArray(reply)) return fields;
  for (let i = 0; i + 1 < reply.length; i += 2) fields[String(reply[i])] = String(reply[i + 1]);
  return fields;
}


/**
 * A Redis master, its replicas and the sentinels watching them, on
 * 127.0.0.1, keeping nothing on disk (a restarted server is empty, and the
 * sentinels turn a restarted old master into a replica). Plain TCP, no ACL.
 */
export class RedisSentinelGroup {
  /** Name of the master the sentinels watch. */
  readonly name: string;
  /** The data servers, the first master at the start. */
  readonly servers: readonly RedisServer[];
  readonly sentinels: readonly RedisServer[];

  /** @internal use `startSandbox({ redis: 'sentinel' })` */
  constructor(name: string, servers: RedisServer[], sentinels: RedisServer[]) {
    this.name = name;
    this.servers = servers;
    this.sentinels = sentinels;
  }

  /** pgreplica's `redis` config for this group (and ioredis options: `new Redis(group.target)`). */
  get target(): { sentinels: { host: string; port: number }[]; name: string } {
    return { sentinels: this.sentinels.map((s) => ({ host: s.host, port: s.port })), name: this.name };
  }

  /** The master as the first sentinel that answers names it. @throws SandboxError when none answers */
  async master(): Promise<RedisServer> {
    for (const sentinel of this.sentinels) {
      if (!sentinel.running) continue;
      try {
        const reply = await sentinel.call('SENTINEL', 'get-master-addr-by-name', this.name);
        const server = Array.isArray(reply) ? this.servers.find((s) => s.port === Number(reply[1])) : undefined;
        if (server) return server;
      } catch {
        // The next sentinel.
      }
    }
    throw new SandboxError('command-failed', `no sentinel names a master for ${this.name}`);
  }

  /** The data servers that are not `master`. */
  replicasOf(master: RedisServer): RedisServer[] {
    return this.servers.filter((s) => s !== master);
  }

  /**
   * Waits until every running sentinel names the same master, that it says it
   * is one, and that `accept` (e.g. "not the server just killed") holds;
   * resolves with it.
   */
  async waitForMaster(accept: (master: RedisServer) => boolean = () => true, timeoutMs = 30_000): Promise<RedisServer> {
    return pollUntil(`a master of ${this.name} all sentinels agree on`, timeoutMs, async () => {
      const ports = new Set<number>();
      for (const sentinel of this.sentinels.filter((s) => s.running)) {
        const reply = await sentinel.call('SENTINEL', 'get-master-addr-by-name', this.name);
        ports.add(Array.isArray(reply) ? Number(reply[1]) : 0);
      }
      const [port] = ports;
      const master = ports.size === 1 ? this.servers.find((s) => s.port === port) : undefined;
      if (!master?.running || !accept(master)) return undefined;
      return parseInfo(await master.call('INFO', 'replication')).role === 'master' ? master : undefined;
    });
  }

  /**
   * Waits until every running data server but the master replicates from it
   * (link up, caught up with its offset) and every running sentinel knows
   * them and the other sentinels: ready for a failover.
   */
  async waitForReplicas(timeoutMs = 30_000): Promise<void> {
    const master = await this.waitForMaster(() => true, timeoutMs);
    const replicas = this.replicasOf(master).filter((s) => s.running);
    const sentinels = this.sentinels.filter((s) => s.running);
    await pollUntil(`replicas of ${this.name} in sync and known to the sentinels`, timeoutMs, async () => {
      const offset = Number(parseInfo(await master.call('INFO', 'replication')).master_repl_offset);
      for (const replica of replicas) {
        const info = parseInfo(await replica.call('INFO', 'replication'));
        if (info.role !== 'slave' || Number(info.master_port) !== master.port || info.master_link_status !== 'up') return undefined;
        if (Number(info.slave_repl_offset) < offset) return undefined;
      }
      for (const sentinel of sentinels) {
        const fields = fieldsOf(await sentinel.call('SENTINEL', 'MASTER', this.name));
        if (Number(fields['num-slaves']) < replicas.length || Number(fields['num-other-sentinels']) < sentinels.length - 1) return undefined;
        if (fields.flags !== 'master') return undefined;
        // A sentinel that counts a replica but still sees it down would not pick it.
        const known = await sentinel.call('SENTINEL', 'REPLICAS', this.name);
        const up = (Array.isArray(known) ? known : []).map(fieldsOf).filter((r) => !/down|disconnected/.test(r.flags ?? '')).map((r) => Number(r.port));
        if (!replicas.every((r) => up.includes(r.port))) return undefined;
      }
      return true;
    });
  }

  /** Stops every server and sentinel (SIGTERM, then SIGKILL). Never throws; resolves with what failed. */
  async stop(): Promise<unknown[]> {
    const errors: unknown[] = [];
    await Promise.all([...this.sentinels, ...this.servers].map((s) => s.stop().catch((err: unknown) => errors.push(err))));
    return errors;
  }
}

/**
 * Starts a Redis master, `replicas` replicas and `sentinels` sentinels in
 * `dir` and waits until the sentinels know them all.
 * @param onStart called with each server's port and pid after every start (the sandbox's manifest)
 */
export async function startRedisSentinelGroup(
  binary: string,
  dir: string,
  logDir: string,
  options: RedisSentinelOptions,
  onStart: (port: number, pid: number) => void,
): Promise<RedisSentinelGroup> {
  const o = { ...DEFAULT_REDIS_SENTINEL_OPTIONS, ...options };
  if (!Number.isInteger(o.replicas) || o.replicas < 1 || o.replicas > 6) throw new SandboxError('invalid-option', `sentinel replicas must be an integer from 1 to 6, got ${o.replicas}`);
  if (!Number.isInteger(o.sentinels) || o.sentinels < 1 || o.sentinels > 5) throw new SandboxError('invalid-option', `sentinels must be an integer from 1 to 5, got ${o.sentinels}`);
  if (!/^[A-Za-z0-9_.-]{1,63}$/.test(o.name)) throw new SandboxError('invalid-option', `sentinel master name must be 1-63 letters, digits, "_", "." or "-", got ${JSON.stringify(o.name)}`);
  const quorum = Math.floor(o.sentinels / 2) + 1;
  const make = async (kind: string, config: (port: number) => string[], sentinel = false) => {
    const port = await freePort();
    const serverDir = join(dir, `${kind}-${port}`);
    mkdirSync(serverDir, { mode: 0o700 });
    return new RedisServer(binary, port, serverDir, join(logDir, `${kind}-${port}.log`), {}, { config: config(port), sentinel, onStart: (pid) => onStart(port, pid) });
  };
  // A stopping master waits for its replicas to catch up (shutdown-timeout, 10 s): not in a sandbox that stops them all at once.
  const master = await make('redis-master', () => ['shutdown-timeout 0']);
  const servers = [master];
  for (let i = 0; i < o.replicas; i++) servers.push(await make('redis-replica', () => ['shutdown-timeout 0', `replicaof ${master.host} ${master.port}`]));
  const sentinels: RedisServer[] = [];
  for (let i = 0; i < o.sentinels; i++) {
    sentinels.push(
      await make(
        'redis-sentinel',
        () => [
          `sentinel monitor ${o.name} ${master.host} ${master.port} ${quorum}`,
          `sentinel down-after-milliseconds ${o.name} ${o.downAfterMs}`,
          `sentinel failover-timeout ${o.name} ${o.failoverTimeoutMs}`,
          `sentinel parallel-syncs ${o.name} 1`,
        ],
        true,
      ),
    );
  }
  const group = new RedisSentinelGroup(o.name, servers, sentinels);
  try {
    await master.start();
    await Promise.all(servers.slice(1).map((s) => s.start()));
    await Promise.all(sentinels.map((s) => s.start()));
    await group.waitForReplicas(30_000);
  } catch (err) {
    await group.stop();
    throw err;
  }
  return group;
}
