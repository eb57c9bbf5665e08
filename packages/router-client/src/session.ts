import type pg from 'pg';
import type { QueryOptions, ReadOptions, SessionHost, TransactionClient, TransactionOptions, WriteResult } from './router-types.js';
import { type Statement, statementText } from './statement.js';
import { type ConsistencyToken, decodeToken, encodeToken, laterToken } from './tokens.js';

/**
 * The router's API with read-your-writes: every write raises the session's
 * token, and every read is served only by a node that replayed it. Pass
 * `session.token` on (HTTP header, job payload) and continue elsewhere with
 * `router.session(token)`.
 */
export class Session {
  readonly #router: SessionHost;
  #token: ConsistencyToken | null;

  /** @internal use `router.session()` */
  constructor(router: SessionHost, token: ConsistencyToken | null) {
    this.#router = router;
    this.#token = token;
  }

  /** The latest write this session knows of; null before any. */
  get token(): ConsistencyToken | null {
    return this.#token;
  }

  /** Raises the session's token to `token` when that is later (a write made elsewhere that this session must see). @throws RouterError (`invalid-token`) for a malformed token. */
  observe(token: ConsistencyToken | null): void {
    this.#raise(token);
  }

  #raise(token: ConsistencyToken | null): void {
    if (!token) return;
    const later = laterToken(this.#token ? decodeToken(this.#token) : null, decodeToken(token));
    this.#token = later ? encodeToken(later) : this.#token;
  }

  #after(options: ReadOptions): ConsistencyToken | null {
    if (!options.after) return this.#token;
    const later = laterToken(this.#token ? decodeToken(this.#token) : null, decodeToken(options.after));
    return later ? encodeToken(later) : null;
  }

  /** Classified like `router.query()`; writes raise the token. */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: Statement, params?: unknown[], options: QueryOptions = {}): Promise<pg.QueryResult<R>> {
    if ((options.target ?? this.#router.routeKind(statementText(sql))) === 'replica') return this.#router.read<R>(sql, params, { ...options, after: this.#after(options) });
    return this.write<R>(sql, params);
  }

  /** A read that sees this session's writes. */
  read<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: Statement, params?: unknown[], options: ReadOptions = {}): Promise<pg.QueryResult<R>> {
    return this.#router.read<R>(sql, params, { ...options, after: this.#after(options) });
  }

  /** A write on the primary; raises the token. */
  async write<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: Statement, params?: unknown[]): Promise<WriteResult<R>> {
    const result = await this.#router.write<R>(sql, params);
    this.#raise(result.token);
    return result;
  }

  /** A transaction; a read-only one sees this session's writes, a writing one raises the token. */
  async transaction<T>(fn: (tx: TransactionClient) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    const { value, token } = await this.#router.transactionWithToken(fn, { ...options, after: this.#after(options) });
    this.#raise(token);
    return value;
  }
}
