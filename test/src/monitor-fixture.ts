import { Monitor } from '@pgreplica/monitor';
import { type Config, createLogger, resolveConfig } from '@pgreplica/runtime';
import { type BusEvent, busKeys, isNewerPosition, parseEvent } from '@pgreplica/protocol';
import type { Sandbox } from '@pgreplica/sandbox';
import { Cluster, Redis, type RedisOptions } from 'ioredis';

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `base` with `overrides` merged in, object by object (arrays and values are replaced). */
export function mergeConfig(base: Record<string, unknown>, overrides: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(overrides)) {
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? mergeConfig(current, value) : value;
  }
  return out;
}

/** A monitor config for a sandbox, fast enough for tests; `overrides` merge in section by section. */
export function monitorConfig(sandbox: Sandbox, overrides: Record<string, unknown> = {}, cluster = 'main'): Record<string, unknown> {
  const base = {
    cluster,
    redis: sandbox.redisTarget ?? {},
    nodes: sandbox.nodes.map((n, i) => ({ id: n.id, host: n.host, port: n.port, priority: i })),
    database: { user: 'postgres', connectTimeoutMs: 1_000, statementTimeoutMs: 1_500 },
    monitor: { probeIntervalMs: 250, heartbeatMs: 1_000, leader: { leaseTtlMs: 2_000 }, http: { port: 0 } },
  };
  return mergeConfig(base, overrides);
}

/** The monitor section of deploy/monitor/monitor.example.yaml (its documented defaults), for `startMonitor` overrides. */
export const DOCUMENTED_MONITOR = { monitor: { probeIntervalMs: 1_000, heartbeatMs: 5_000, leader: { leaseTtlMs: 5_000 } } } as const;

/** Environment carrying the sandbox's password (and a bus key when given). */
export function monitorEnv(sandbox: Sandbox, busKey?: string): NodeJS.ProcessEnv {
  return { PGREPLICA_DB_PASSWORD: sandbox.primary.connectionConfig.password as string, ...(busKey ? { PGREPLICA_BUS_KEY: busKey } : {}) };
}

/** Starts an in-process monitor against a sandbox. */
export async function startMonitor(sandbox: Sandbox, overrides: Record<string, unknown> = {}, busKey?: string): Promise<Monitor & AsyncDisposable> {
  const config: Config = resolveConfig(monitorConfig(sandbox, overrides), monitorEnv(sandbox, busKey));
  const monitor = new Monitor(config, createLogger(process.env.PGREPLICA_TEST_LOG ?? 'silent'));
  await monitor.start();
  return Object.assign(monitor, { [Symbol.asyncDispose]: () => monitor.close() });
}

/**
 * Every event in a cluster's stream (`…:stream`, the audit copy of the
 * channel), oldest first, verified with `key`: what a subscriber that was
 * disconnected (a Redis failover) missed is there. `redisAt` as for {@link BusRecorder.start}.
 */
export async function streamEvents(redisAt: string | RedisOptions | { cluster: { host: string; port: number }[] }, cluster = 'main', key?: string): Promise<BusEvent[]> {
  const redis = typeof redisAt === 'string' ? new Redis(redisAt) : 'cluster' in redisAt ? new Cluster(redisAt.cluster) : new Redis(redisAt);
  redis.on('error', () => {});
  try {
    const entries = (await redis.xrange(busKeys(cluster).stream, '-', '+')) as [string, string[]][];
    return entries.flatMap(([, fields]) => {
      const parsed = parseEvent(fields[fields.indexOf('event') + 1] ?? '', { cluster, key });
      return parsed.ok ? [parsed.event] : [];
    });
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

/** Records every event on a cluster's bus, checks their order, and waits for ones it needs. */
export class BusRecorder {
  readonly events: BusEvent[] = [];
  readonly rejected: string[] = [];
  /** Events that arrived out of (term, seq) order: must stay empty. */
  readonly outOfOrder: BusEvent[] = [];
  readonly #redis: Redis | Cluster;
  #waiters: { match: (e: BusEvent) => boolean; resolve: (e: BusEvent) => void }[] = [];

  private constructor(redis: Redis | Cluster) {
    this.#redis = redis;
  }

  /**
   * `redis`: a URL, ioredis options (a TLS sandbox's `redis.connectOptions`,
   * a Sentinel group's `target`), or a Cluster's `target` (`{ cluster }`).
   */
  static async start(redisAt: string | RedisOptions | { cluster: { host: string; port: number }[] }, cluster = 'main', key?: string): Promise<BusRecorder> {
    const redis =
      typeof redisAt === 'string'
        ? new Redis(redisAt, { maxRetriesPerRequest: null })
        : 'cluster' in redisAt
          ? new Cluster(redisAt.cluster, { redisOptions: { maxRetriesPerRequest: null } })
          : // Back soon after a Sentinel failover (pub/sub is at-most-once: what it misses meanwhile is in the stream, see streamEvents).
            new Redis({ retryStrategy: () => 100, ...redisAt, maxRetriesPerRequest: null });
    redis.on('error', () => {});
    const recorder = new BusRecorder(redis);
    redis.on('message', (_channel: string, message: string) => {
      const parsed = parseEvent(message, { cluster, key });
      if (!parsed.ok) {
        recorder.rejected.push(parsed.rejection);
        return;
      }
      const last = recorder.events.at(-1);
      if (last && !isNewerPosition(parsed.event, last)) recorder.outOfOrder.push(parsed.event);
      recorder.events.push(parsed.event);
      recorder.#waiters = recorder.#waiters.filter((w) => {
        if (!w.match(parsed.event)) return true;
        w.resolve(parsed.event);
        return false;
      });
    });
    await redis.subscribe(busKeys(cluster).events);
    return recorder;
  }

  /** The first event (already seen or future) that matches, or a rejection after `timeoutMs`. */
  waitFor<E extends BusEvent = BusEvent>(match: (e: BusEvent) => boolean, timeoutMs: number, what = 'event', since = 0): Promise<E> {
    const seen = this.events.slice(since).find(match);
    if (seen) return Promise.resolve(seen as E);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms; saw ${this.events.slice(since).map((e) => e.type).join(', ')}`)), timeoutMs);
      this.#waiters.push({
        match,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e as E);
        },
      });
    });
  }

  /** node.status events of one node, after index `since`. */
  statusOf(nodeId: string, since = 0): { to: string; reason: string; at: number }[] {
    return this.events
      .slice(since)
      .filter((e) => e.type === 'node.status' && e.nodeId === nodeId)
      .map((e) => (e.type === 'node.status' ? { to: e.to, reason: e.reason, at: Date.parse(e.at) } : { to: '', reason: '', at: 0 }));
  }

  async close(): Promise<void> {
    // Not QUIT: with Redis away it would wait for a reconnection that may never come.
    this.#redis.disconnect();
  }
}
