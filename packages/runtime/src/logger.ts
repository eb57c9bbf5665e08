import { pino, type Logger } from 'pino';

/** Fields that may hold secrets anywhere in a log object; pino replaces them. */
export const REDACT_PATHS = [
  'password',
  '*.password',
  '*.*.password',
  'databasePassword',
  '*.databasePassword',
  'busKey',
  '*.busKey',
  'httpToken',
  '*.httpToken',
  'authorization',
  '*.authorization',
  'connectionString',
  '*.connectionString',
];

/** The process's root logger: JSON to stdout, secrets redacted. */
export function createLogger(level = process.env.LOG_LEVEL || 'info', destination?: pino.DestinationStream, name = 'pgreplica'): Logger {
  return pino(
    {
      name,
      level,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: { err: pino.stdSerializers.err },
    },
    destination,
  );
}
