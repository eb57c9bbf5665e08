#!/usr/bin/env node
/**
 * The example as a service: configured by the environment, stopped by
 * SIGTERM or SIGINT (one handler; a bounded grace period; a second signal
 * exits at once).
 *
 *   PGREPLICA_REDIS_URL   the bus (required)
 *   PGREPLICA_CLUSTER     cluster name on the bus (default: main)
 *   PGREPLICA_BUS_KEY     HMAC key of the bus events, if the monitor signs them
 *   PGUSER, PGPASSWORD, PGDATABASE   how to log in to every node
 *   PORT, HOST            where to listen (default: a free port on 127.0.0.1)
 */
import { startServer } from './server.js';

const GRACE_MS = 10_000;
const env = (name: string) => (process.env[name] === '' ? undefined : process.env[name]);

const redis = env('PGREPLICA_REDIS_URL');
if (!redis) {
  console.error('pgreplica-example: set PGREPLICA_REDIS_URL to the bus the pgreplica monitor publishes on (e.g. redis://127.0.0.1:6379)');
  process.exit(2);
}
const port = Number(env('PORT') ?? 0);
if (!Number.isInteger(port) || port < 0 || port > 65_535) {
  console.error(`pgreplica-example: PORT must be a port number, got ${env('PORT')}`);
  process.exit(2);
}

const server = await startServer({
  port,
  host: env('HOST') ?? '127.0.0.1',
  router: {
    cluster: env('PGREPLICA_CLUSTER') ?? 'main',
    redis,
    busKey: env('PGREPLICA_BUS_KEY'),
    connection: { user: env('PGUSER'), password: env('PGPASSWORD'), database: env('PGDATABASE'), applicationName: 'pgreplica-example' },
  },
});
console.log(`pgreplica example listening on ${server.url}`);

let stopping = false;
const stop = (signal: string) => {
  if (stopping) {
    console.error(`${signal} again: exiting now`);
    process.exit(1);
  }
  stopping = true;
  console.error(`${signal}: closing (up to ${GRACE_MS} ms)`);
  const timer = setTimeout(() => {
    console.error('grace period over: exiting');
    process.exit(1);
  }, GRACE_MS + 2_000);
  timer.unref();
  server.close(GRACE_MS).then(
    () => {
      console.error('closed');
      process.exit(0);
    },
    (err: Error) => {
      console.error(`close failed: ${err.message}`);
      process.exit(1);
    },
  );
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
