import { redisRetryDelayMs } from '@pgreplica/protocol';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { MonitorConfig } from './config.js';

/** What a connection is for; each role gets its own connection (STYLE: connections by role). */
export type RedisRole = 'command' | 'bullmq';

/** Capped, jittered reconnect back-off: 50 ms doubling to 2 s (shared with the router). */
export const retryStrategy = (times: number): number => redisRetryDelayMs(times);

/**
 * Opens a Redis connection of the configured kind (single, Sentinel, Cluster).
 * Commands fail fast while disconnected (`enableOfflineQueue: false` for the
 * command role), so a probe round never waits on Redis; the BullMQ role waits
 * forever, as BullMQ requires.
 */
export function connectRedis(config: Pick<MonitorConfig, 'redis'>, role: RedisRole, name: string): Redis | Cluster {
  const common: RedisOptions = {
    connectionName: name,
    retryStrategy,
    lazyConnect: false,
    ...(role === 'bullmq'
      ? { maxRetriesPerRequest: null, enableOfflineQueue: true }
      : { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 2_000, commandTimeout: 2_000 }),
  };
  const redis = config.redis;
  if ('cluster' in redis) {
    return new Cluster(redis.cluster, { redisOptions: common, clusterRetryStrategy: retryStrategy, enableOfflineQueue: role === 'bullmq' });
  }
  if ('sentinels' in redis) {
    return new Redis({ ...common, sentinels: redis.sentinels, name: redis.name, password: redis.password, db: redis.db });
  }
  return new Redis(redis.url, common);
}

/**
 * The two connections a service needs: commands (fail fast) and BullMQ
 * (waits forever), both logging their errors at debug level (reconnects are
 * routine; what fails is reported where it matters).
 */
export function connectServiceRedis(
  config: Pick<MonitorConfig, 'redis'>,
  name: string,
  logger: { debug(obj: object, msg: string): void },
): { command: Redis | Cluster; bullmq: Redis | Cluster } {
  const command = connectRedis(config, 'command', name);
  command.on('error', (err) => logger.debug({ err }, 'redis connection error'));
  const bullmq = connectRedis(config, 'bullmq', `${name}:queue`);
  bullmq.on('error', (err) => logger.debug({ err }, 'redis (queue) connection error'));
  return { command, bullmq };
}
