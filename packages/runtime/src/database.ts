import type { ProbeConnectionOptions } from '@pgreplica/probe';
import type { Config } from './config.js';

/** node-postgres `ssl` options from `database.ssl` (undefined: no TLS). */
export function databaseSsl(config: Pick<Config, 'database' | 'databaseCa'>): { rejectUnauthorized: boolean; ca?: string; servername?: string } | undefined {
  const ssl = config.database.ssl;
  if (!ssl) return undefined;
  return {
    rejectUnauthorized: ssl.rejectUnauthorized,
    ...(config.databaseCa !== undefined ? { ca: config.databaseCa } : {}),
    ...(ssl.servername !== undefined ? { servername: ssl.servername } : {}),
  };
}

/**
 * How a program probes the nodes (`NodeProber` options): the configured
 * user, password, database, TLS and timeouts — the one definition the
 * monitor and the worker share.
 */
export function probeConnection(config: Pick<Config, 'database' | 'databaseCa' | 'databasePassword'>, applicationName: string): ProbeConnectionOptions {
  const db = config.database;
  return {
    user: db.user,
    password: config.databasePassword,
    database: db.database,
    ssl: databaseSsl(config),
    connectTimeoutMs: db.connectTimeoutMs,
    statementTimeoutMs: db.statementTimeoutMs,
    applicationName,
  };
}
