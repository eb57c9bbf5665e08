/** Codes of {@link RouterError}; callers branch on these, never on messages. */
export type RouterErrorCode =
  | 'closed'
  | 'invalid-option'
  | 'invalid-token'
  | 'no-primary'
  | 'primary-down'
  | 'fallback-budget'
  | 'write-pause-timeout'
  | 'fenced'
  | 'released';

/** Base error of the router. `cause` holds the underlying error. */
export class RouterError extends Error {
  override readonly name: string = 'RouterError';
  readonly code: RouterErrorCode;

  constructor(code: RouterErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/**
 * A read found no qualifying replica and the primary's fallback budget is
 * spent: the router fails fast instead of melting the primary.
 */
export class FallbackBudgetExceededError extends RouterError {
  override readonly name = 'FallbackBudgetExceededError';

  constructor(message: string) {
    super('fallback-budget', message);
  }
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN']);
/** SQLSTATEs that mean the connection, not the statement, failed. */
const CONNECTION_SQLSTATES = new Set(['57P01', '57P02', '57P03', '08000', '08003', '08006', '08001', '08004', '53300']);

/**
 * pg-pool's error when every client of the pool stayed busy for
 * `connectionTimeoutMillis` (pg-pool `connect()`, the pending-queue timer).
 * A failed or slow *connection attempt* is reported differently: "Connection
 * terminated due to connection timeout" (pg-pool `newClient`) or the
 * socket's own error.
 */
const POOL_WAIT_TIMEOUT = 'timeout exceeded when trying to connect';

/**
 * Whether an error is pg-pool giving up waiting for a free pooled client:
 * the app's own load, not a node failure. Such a call never reached the node.
 */
export function isPoolWaitTimeout(err: unknown): boolean {
  const message = (err as { message?: unknown } | null)?.message;
  return typeof message === 'string' && message === POOL_WAIT_TIMEOUT;
}

/**
 * Whether an error from node-postgres is a connection-level failure (the
 * node, not the statement): safe to try a read elsewhere. Waiting for a
 * free pooled client ({@link isPoolWaitTimeout}) is not one: a traffic spike
 * must not ban healthy replicas.
 */
export function isConnectionError(err: unknown): boolean {
  if (err instanceof RouterError) return err.code === 'fenced';
  const e = err as { code?: unknown; message?: unknown } | null;
  if (!e) return false;
  if (typeof e.code === 'string' && (CONNECTION_CODES.has(e.code) || CONNECTION_SQLSTATES.has(e.code))) return true;
  const message = typeof e.message === 'string' ? e.message : '';
  return /Connection terminated|connection timeout|Client has encountered a connection error|not queryable/i.test(message);
}

/** SQLSTATE of a database error, if any. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}
