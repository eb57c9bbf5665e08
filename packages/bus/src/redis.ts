import { redisRetryDelayMs } from '@pgreplica/protocol';
import { Cluster, Redis, type RedisOptions } from 'ioredis';

/**
 * TLS to Redis: the CA certificate (PEM) to verify the server with — the
 * system's CAs when absent — and the name its certificate must hold when it
 * is not the host dialled. Verification is never turned off.
 */
export interface RedisTlsTarget {
  ca?: string | undefined;
  servername?: string | undefined;
}

/**
 * Where Redis is: one server, a Sentinel group, or a Cluster (the config's
 * `redis` section). `tls` encrypts every connection (with a URL, only a
 * `rediss://` one, which is TLS even without it).
 */
export type RedisTarget =
  | { url: string; tls?: RedisTlsTarget | undefined }
  | { sentinels: { host: string; port: number }[]; name: string; password?: string | undefined; db?: number | undefined; tls?: RedisTlsTarget | undefined }
  | { cluster: { host: string; port: number }[]; tls?: RedisTlsTarget | undefined };

/**
 * What a connection is for; each role gets its own connection (STYLE: connections by role).
 * - `command`: a service's commands; fail fast while disconnected, so a probe round never waits on Redis.
 * - `subscriber`: pub/sub; waits forever, reconnects with capped, jittered back-off.
 * - `bullmq`: BullMQ's blocking work; waits forever, as BullMQ requires.
 * - `oneshot`: a command-line call; no reconnect, a short connect timeout.
 */
export type RedisRole = 'command' | 'subscriber' | 'bullmq' | 'oneshot';

/** Capped, jittered reconnect back-off: 50 ms doubling to 2 s. */
export const retryStrategy = (times: number): number => redisRetryDelayMs(times);

/** The ioredis options of a role: the one definition every pgreplica program uses. */
export function redisOptions(role: RedisRole, connectionName: string): RedisOptions {
  switch (role) {
    case 'command':
      return { connectionName, retryStrategy, maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 2_000, commandTimeout: 2_000 };
    case 'subscriber':
      return { connectionName, retryStrategy, maxRetriesPerRequest: null, enableOfflineQueue: true };
    case 'bullmq':
      return { connectionName, retryStrategy, maxRetriesPerRequest: null, enableOfflineQueue: true };
    case 'oneshot':
      return { connectionName, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 1, enableOfflineQueue: true, connectTimeout: 3_000 };
  }
}

/** Node `tls.connect` options of a target: verification on (Node's default), CA and name when given. */
function tlsOptions(tls: RedisTlsTarget): NonNullable<RedisOptions['tls']> {
  return { ...(tls.ca !== undefined ? { ca: tls.ca } : {}), ...(tls.servername !== undefined ? { servername: tls.servername } : {}) };
}

/** Opens a connection of `role` to a Redis target. */
export function connectRedis(target: RedisTarget, role: RedisRole, connectionName: string): Redis | Cluster {
  const options: RedisOptions = { ...redisOptions(role, connectionName), ...(target.tls ? { tls: tlsOptions(target.tls) } : {}) };
  if ('cluster' in target) {
    const { retryStrategy: clusterRetryStrategy, enableOfflineQueue, lazyConnect, ...redisOnly } = options;
    return new Cluster(target.cluster, { redisOptions: redisOnly, clusterRetryStrategy, enableOfflineQueue, lazyConnect });
  }
  if ('sentinels' in target) {
    // The sentinels speak TLS too, and the servers they name get the same settings.
    const sentinelTls = options.tls ? { sentinelTLS: options.tls, enableTLSForSentinelMode: true } : {};
    return new Redis({ ...options, ...sentinelTls, sentinels: target.sentinels, name: target.name, password: target.password, db: target.db });
  }
  return new Redis(target.url, options);
}

/**
 * A second connection like `redis` for another role: the role's retries and
 * queueing, whatever the first had (BullMQ needs `maxRetriesPerRequest: null`;
 * a subscription of a one-shot command line must still reconnect).
 */
export function duplicateFor(redis: Redis | Cluster, role: RedisRole): Redis | Cluster {
  const { maxRetriesPerRequest, enableOfflineQueue, retryStrategy: retry } = redisOptions(role, '');
  // A Cluster queues and retries at its own level (a node's retryStrategy and offline queue are the Cluster's to set).
  return redis instanceof Cluster
    ? redis.duplicate(undefined, { enableOfflineQueue, clusterRetryStrategy: retry, redisOptions: { maxRetriesPerRequest } })
    : redis.duplicate({ maxRetriesPerRequest, enableOfflineQueue, retryStrategy: retry });
}

/**
 * The two connections a service needs: commands (fail fast) and BullMQ
 * (waits forever), both logging their errors at debug level (reconnects are
 * routine; what fails is reported where it matters).
 */
export function connectServiceRedis(
  target: RedisTarget,
  name: string,
  logger: { debug(obj: object, msg: string): void },
): { command: Redis | Cluster; bullmq: Redis | Cluster } {
  const command = connectRedis(target, 'command', name);
  command.on('error', (err) => logger.debug({ err }, 'redis connection error'));
  const bullmq = connectRedis(target, 'bullmq', `${name}:queue`);
  bullmq.on('error', (err) => logger.debug({ err }, 'redis (queue) connection error'));
  return { command, bullmq };
}

/** How long {@link closeRedis} waits for QUIT before dropping the connection. */
export const QUIT_TIMEOUT_MS = 2_000;

/**
 * Closes connections politely (QUIT), or at once when that fails, takes
 * longer than {@link QUIT_TIMEOUT_MS}, or the connection is not ready: with
 * Redis away (restarting, failing over), QUIT would wait in the offline
 * queue of a connection that retries forever. Never throws.
 */
export async function closeRedis(...connections: (Redis | Cluster | undefined)[]): Promise<void> {
  await Promise.all(
    connections.map(async (c) => {
      if (!c) return;
      if (c.status !== 'ready') {
        c.disconnect();
        return;
      }
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, QUIT_TIMEOUT_MS);
        timer.unref();
      });
      await Promise.race([c.quit().then(() => undefined, () => undefined), timeout]);
      clearTimeout(timer);
      c.disconnect();
    }),
  );
}
