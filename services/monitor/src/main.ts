#!/usr/bin/env node
/**
 * pgreplica-monitor --config <file>
 *
 * Exit codes: 0 clean shutdown, 1 runtime failure or shutdown timeout,
 * 2 bad arguments or configuration.
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './logger.js';
import { Monitor } from './monitor.js';

/** Bounded shutdown: below the usual orchestrator kill timeouts (systemd 90 s, Kubernetes 30 s). */
const SHUTDOWN_GRACE_MS = 10_000;

const USAGE = 'Usage: pgreplica-monitor --config <file.yaml|file.json>\n';

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
    process.stderr.write(`pgreplica-monitor: ${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (!configPath) {
    process.stderr.write(`pgreplica-monitor: --config is required\n${USAGE}`);
    process.exit(2);
  }

  const logger = createLogger();
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(configPath);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`pgreplica-monitor: ${err.message}\n`);
      logger.fatal({ issues: err.issues }, 'invalid configuration; refusing to start');
      process.exit(2);
    }
    throw err;
  }

  const monitor = new Monitor(config, logger);
  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      logger.error({ graceMs: SHUTDOWN_GRACE_MS }, 'shutdown timed out');
      process.exit(1);
    }, SHUTDOWN_GRACE_MS);
    timer.unref();
    monitor.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  await monitor.start();
}

main().catch((err: unknown) => {
  process.stderr.write(`pgreplica-monitor: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
