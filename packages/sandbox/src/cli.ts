#!/usr/bin/env node
/**
 * pgreplica-sandbox: brings up a local primary, streaming replicas and Redis,
 * shows their state until Ctrl-C, then stops all of it.
 */
import { parseArgs } from 'node:util';
import { MAX_REPLICAS, type Sandbox, startSandbox } from './sandbox.js';
import { formatStatus } from './status.js';

const USAGE = `Usage: pgreplica-sandbox [--replicas N] [--no-redis] [--interval-ms MS]

Starts a PostgreSQL primary, N streaming replicas (default 2) and redis-server
on free 127.0.0.1 ports, prints their connection URLs and replication state
every --interval-ms (default 2000), and stops everything on Ctrl-C.`;

function fail(message: string): never {
  process.stderr.write(`pgreplica-sandbox: ${message}\n\n${USAGE}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  let values: { replicas?: string; 'no-redis'?: boolean; 'interval-ms'?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        replicas: { type: 'string' },
        'no-redis': { type: 'boolean' },
        'interval-ms': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const replicas = values.replicas === undefined ? 2 : Number(values.replicas);
  if (!Number.isInteger(replicas) || replicas < 0 || replicas > MAX_REPLICAS) fail(`--replicas must be an integer from 0 to ${MAX_REPLICAS}`);
  const intervalMs = values['interval-ms'] === undefined ? 2_000 : Number(values['interval-ms']);
  if (!Number.isInteger(intervalMs) || intervalMs < 100) fail('--interval-ms must be an integer of at least 100');

  const started = Date.now();
  const log = (message: string) => process.stderr.write(`[sandbox] ${message}\n`);
  let sandbox: Sandbox | undefined;
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) {
      log('second signal: exiting now (the reaper removes what is left)');
      process.exit(1);
    }
    stopping = true;
    log(`${signal}: stopping all servers`);
    try {
      await sandbox?.stop();
      log('stopped; nothing left running');
      process.exit(0);
    } catch (err) {
      log(`stop failed: ${(err as Error).message}`);
      process.exit(1);
    }
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));

  sandbox = await startSandbox({ replicas, redis: !values['no-redis'], log });
  if (stopping) return;
  log(`up in ${((Date.now() - started) / 1000).toFixed(1)} s (PostgreSQL ${sandbox.binaries.pgMajor}); directory ${sandbox.baseDir}`);
  process.stdout.write('\nConnection URLs (superuser; the sandbox is loopback-only and deleted on exit):\n');
  for (const node of sandbox.nodes) process.stdout.write(`  ${node.id.padEnd(3)} ${node.url}\n`);
  if (sandbox.redis) process.stdout.write(`  redis ${sandbox.redis.redactedUrl}\n`);
  process.stdout.write('\nPress Ctrl-C to stop.\n\n');

  const tty = process.stdout.isTTY;
  let shownLines = 0;
  for (;;) {
    if (stopping) return;
    const status = await formatStatus(sandbox);
    if (stopping) return;
    // On a terminal, redraw in place; in a pipe or log, print with a time stamp.
    if (tty) {
      process.stdout.write(`${shownLines > 0 ? `\x1b[${shownLines}F\x1b[J` : ''}${status}\n`);
      shownLines = status.split('\n').length;
    } else {
      process.stdout.write(`${new Date().toISOString()}\n${status}\n\n`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`pgreplica-sandbox: ${(err as Error).message}\n`);
  process.exit(1);
});
