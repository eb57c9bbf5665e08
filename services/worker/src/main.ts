#!/usr/bin/env node
/**
 * pgreplica-worker --config <file>  (the monitor's config file; its `worker` section)
 *
 * Exit codes: 0 clean shutdown, 1 runtime failure or shutdown timeout, 2 bad arguments or configuration.
 */
import { parseArgs } from 'node:util';
import { ConfigError, createLogger, loadConfig } from '@pgreplica/monitor';
import { RemediationWorker } from './remediation-worker.js';

/** Bounded: a running job gets this long to finish before the process exits. */
const SHUTDOWN_GRACE_MS = 20_000;
const USAGE = 'Usage: pgreplica-worker --config <file.yaml|file.json>\n';

async function main(): Promise<void> {
  let configPath: string | undefined;
  try {
    const { values } = parseArgs({ options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } }, strict: true });
    if (values.help) {
      process.stdout.write(USAGE);
      return;
    }
    configPath = values.config;
  } catch (err) {
    process.stderr.write(`pgreplica-worker: ${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (!configPath) {
    process.stderr.write(`pgreplica-worker: --config is required\n${USAGE}`);
    process.exit(2);
  }
  const logger = createLogger(undefined, undefined, 'pgreplica-worker');
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(configPath);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`pgreplica-worker: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const stalled = Number(process.env.PGREPLICA_WORKER_STALLED_INTERVAL_MS || 30_000);
  const worker = new RemediationWorker(config, logger, { stalledIntervalMs: stalled, lockDurationMs: Math.max(stalled, 5_000) });
  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.info({ signal }, 'shutting down');
    setTimeout(() => {
      logger.error({ graceMs: SHUTDOWN_GRACE_MS }, 'shutdown timed out');
      process.exit(1);
    }, SHUTDOWN_GRACE_MS).unref();
    worker.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  await worker.start();
}

main().catch((err: unknown) => {
  process.stderr.write(`pgreplica-worker: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
