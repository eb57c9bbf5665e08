import { parseArgs } from 'node:util';
import type { Logger } from 'pino';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger } from './logger.js';

/** A long-running service object. */
export interface Service {
  start(): Promise<void>;
  close(): Promise<void>;
}

/** How {@link runService} runs one program. */
export interface ServiceProgram {
  /** Program name, for usage, errors and the logger. */
  name: string;
  /** Builds the service from the validated config. */
  create(config: Config, logger: Logger): Service;
  /** Bounded shutdown, shorter than the orchestrator's kill timeout. */
  shutdownGraceMs: number;
}

/**
 * The shared `main` of pgreplica-monitor and pgreplica-worker: `--config`,
 * config validation (exit 2 before any socket opens), one handler for
 * SIGTERM and SIGINT with a bounded grace period (a second signal exits at
 * once; timeout or error exits 1).
 */
export async function runService(program: ServiceProgram, argv = process.argv.slice(2)): Promise<void> {
  const usage = `Usage: ${program.name} --config <file.yaml|file.json>\n`;
  let configPath: string | undefined;
  try {
    const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } }, strict: true });
    if (values.help) {
      process.stdout.write(usage);
      return;
    }
    configPath = values.config;
  } catch (err) {
    process.stderr.write(`${program.name}: ${(err as Error).message}\n${usage}`);
    process.exit(2);
  }
  if (!configPath) {
    process.stderr.write(`${program.name}: --config is required\n${usage}`);
    process.exit(2);
  }
  const logger = createLogger(undefined, undefined, program.name);
  let config: Config;
  try {
    config = loadConfig(configPath);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${program.name}: ${err.message}\n`);
      logger.fatal({ issues: err.issues }, 'invalid configuration; refusing to start');
      process.exit(2);
    }
    throw err;
  }
  const service = program.create(config, logger);
  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    setTimeout(() => {
      logger.error({ graceMs: program.shutdownGraceMs }, 'shutdown timed out');
      process.exit(1);
    }, program.shutdownGraceMs).unref();
    service.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  await service.start();
}

/** Runs `runService` as a program's entry point. */
export function mainOf(program: ServiceProgram): void {
  runService(program).catch((err: unknown) => {
    process.stderr.write(`${program.name}: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
