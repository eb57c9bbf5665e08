/**
 * One checked-out client of `router.asPool()`: a pg.Client look-alike that
 * holds no connection until a statement needs one, then pins to the primary
 * or a replica by what it sees (BEGIN, a write, a read-only transaction) and
 * keeps the read-your-writes token. Past 300 lines because pg.Client's three
 * calling styles (promise, callback, Submittable) and the pinning state
 * machine share every method; split, the transitions would be hard to follow.
 */
import { EventEmitter } from 'node:events';
import pg from 'pg';
import { isConnectionError, RouterError, sqlState } from './errors.js';
import { queryThen, queryThenLsn } from './executor.js';
import type { Binding, PoolHost } from './pool-host.js';
import type { Router } from './router.js';
import type { Session } from './session.js';
import { describe, isBegin, isCommit, isReadOnlyBegin, isStatement, isTransactionControl, type Statement, statementText } from './statement.js';
import { encodeToken } from './tokens.js';

/** What a checked-out client does with statements before it is pinned: see `RouterPoolOptions.checkout`. */
export type CheckoutMode = 'primary' | 'reads-first';

/** Where a client's statements go now. */
type ClientState =
  /** No connection yet (or again, after a read-only transaction on a replica). */
  | 'unbound'
  /** In a read-only transaction on the connection it began on. */
  | 'read-only-tx'
  /** Pinned to the primary until released. */
  | 'primary'
  /** A read-only transaction left session state on its node: pinned there until released. */
  | 'sticky';

/** How often a refused first statement of a fresh primary connection is tried again on the (new) primary. */
const MAX_REBINDS = 50;
const READ_ONLY_SETTING = "SELECT current_setting('transaction_read_only') AS ro";
const FORWARDED_EVENTS = ['notice', 'notification', 'end', 'error'] as const;

/** pg-pool's message, which callers of pg match. */
export const DOUBLE_RELEASE_MESSAGE = 'Release called on client which has already been released to the pool.';

/** `client.query(textOrConfig, values)`: node-postgres takes a `QueryConfig` with values; its typings only partly. */
type RawQuery = (statement: Statement, values?: unknown[]) => Promise<pg.QueryResult>;

/** What the client needs of the face that made it (shared by its clients). */
export interface RouterPoolClientSettings {
  host: PoolHost;
  router: Router;
  checkout: CheckoutMode;
  readOnlyOnReplicas: boolean;
  onRelease: (client: RouterPoolClient) => void;
}

/**
 * The client `RouterPool.connect()` gives: the part of `pg.PoolClient` that
 * drivers use (`query()` in every form, `release(err?)`, `notice` /
 * `notification` / `error` / `end` events of its connection,
 * `getTransactionStatus()`, `processID`, `escapeIdentifier()` /
 * `escapeLiteral()`).
 *
 * It takes a connection at its first statement and keeps it until
 * `release()` — one node for all its statements:
 *
 * * a first statement `BEGIN … READ ONLY` (`START TRANSACTION … READ ONLY`)
 *   runs that transaction on a replica that qualifies (the session's token
 *   honoured; the primary when none does). When the transaction ends the
 *   replica connection goes back and the next statement picks again —
 *   unless a statement in it may have left state in the session (`SET`,
 *   `PREPARE`, `DECLARE … WITH HOLD`, anything the classifier does not take
 *   for a read): then the client stays on that replica, where a write is
 *   refused (`25006`) — it never silently moves away from its session state;
 * * with `checkout: 'reads-first'`, reads before anything else are routed
 *   like `pool.query()`, each on its own;
 * * anything else pins the primary: a connection fenced for the epoch, taken
 *   through a switchover like any write. A `BEGIN` on a primary already made
 *   read-only by a switchover, or a first write it refuses with `25006`,
 *   moves to the new primary (nothing ran).
 *
 * Writes raise the session's token (the one of `runWithSession()` when the
 * client was checked out, or the face's) and the router's own with
 * `consistency: 'read-your-writes'`: autocommit writes and `COMMIT` read the
 * WAL position on the same round trip.
 */
export class RouterPoolClient extends EventEmitter {
  readonly #settings: RouterPoolClientSettings;
  /** The session of this checkout: its token is honoured and raised. */
  #session: Session | undefined;
  #binding: Binding | null = null;
  #state: ClientState = 'unbound';
  #released = false;
  /** The binding has run nothing yet: a refusal of its first statement may move it. */
  #fresh = false;
  /** A statement in the read-only transaction may have left session state. */
  #dirty = false;
  /** A statement that may write ran on the primary since the last token. */
  #wrote = false;
  /** In a transaction, by the statements' text (node-postgres older than 8.20 does not report the server's status). */
  #inTxByText = false;
  /** The connection broke after a commit: destroy it on release. */
  #broken: Error | undefined;
  /** Settles after the last statement called (only read while one is pending). */
  #tail: Promise<unknown> | null = null;
  /** Statements called and not yet settled. */
  #pending = 0;
  readonly #settle = (): void => {
    this.#pending--;
  };
  #forwarders: Map<string, (...args: unknown[]) => void> | null = null;

  /** @internal made by `RouterPool.connect()` */
  constructor(settings: RouterPoolClientSettings, session: Session | undefined) {
    super();
    this.#settings = settings;
    this.#session = session;
  }

  /**
   * @internal The face hands a released client out again (as pg-pool reuses
   * its clients): only one nothing can still reach — nothing pending, no
   * connection, no listener.
   */
  recyclable(): boolean {
    return this.#released && this.#pending === 0 && this.#binding === null && this.eventNames().length === 0;
  }

  /** @internal a new checkout of a {@link recyclable} client. */
  reuse(session: Session | undefined): this {
    this.#session = session;
    this.#released = false;
    this.#state = 'unbound';
    this.#fresh = false;
    this.#dirty = false;
    this.#wrote = false;
    this.#inTxByText = false;
    this.#broken = undefined;
    this.#tail = null;
    return this;
  }

  /** The backend process id of the connection the client holds now, or null. */
  get processID(): number | null {
    return (this.#binding?.client as { processID?: number } | undefined)?.processID ?? null;
  }

  /** The node the client is pinned to now, or null. */
  get nodeId(): string | null {
    return this.#binding?.node.id ?? null;
  }

  /** node-postgres' `getTransactionStatus()` of the connection held now: `'I'` when none is held. */
  getTransactionStatus(): 'I' | 'T' | 'E' | null {
    const client = this.#binding?.client as { getTransactionStatus?: () => 'I' | 'T' | 'E' | null } | undefined;
    if (!client) return 'I';
    return client.getTransactionStatus?.() ?? (this.#inTxByText ? 'T' : 'I');
  }

  /** Quotes an identifier (node-postgres' `escapeIdentifier`). */
  escapeIdentifier(str: string): string {
    return pg.escapeIdentifier(str);
  }

  /** Quotes a literal (node-postgres' `escapeLiteral`). */
  escapeLiteral(str: string): string {
    return pg.escapeLiteral(str);
  }

  /**
   * Runs a statement, as `pg.Client#query()`: text or a `QueryConfig`
   * (`name`, `rowMode`, `types` pass through), values, and an optional
   * callback (then it returns undefined). A `Submittable` (pg-cursor,
   * pg-query-stream) pins the client like a write and is returned as it is.
   * Statements run one after another, in call order.
   */
  query(config: Statement | pg.Submittable, values?: unknown[] | ((err: Error | undefined, result?: pg.QueryResult) => void), callback?: (err: Error | undefined, result?: pg.QueryResult) => void): unknown {
    if (typeof values === 'function') {
      callback = values;
      values = undefined;
    }
    if (typeof (config as pg.Submittable | null)?.submit === 'function') return this.#submit(config as pg.Submittable);
    let run: Promise<pg.QueryResult>;
    if (!isStatement(config)) {
      run = Promise.reject(new TypeError(`query(): the first argument must be SQL text, a QueryConfig with a string text or a Submittable, got ${describe(config)}`));
    } else if (this.#pending === 0) {
      // Nothing queued (the usual case): run now, without chaining on the previous statement.
      run = this.#start(config as Statement, values as unknown[] | undefined);
    } else {
      run = this.#tail!.then(() => this.#start(config as Statement, values as unknown[] | undefined));
    }
    this.#pending++;
    const settled = run.then(this.#settle, this.#settle);
    this.#tail = settled;
    if (!callback) return run;
    const cb = callback;
    run.then(
      (result) => cb(undefined, result),
      (err: Error) => cb(err),
    );
    return undefined;
  }

  #submit(submittable: pg.Submittable): pg.Submittable {
    this.#pending++;
    const run = (this.#tail ?? Promise.resolve()).then(async () => {
      this.#assertHeld();
      if (this.#state === 'unbound') this.#bind(await this.#settings.host.bindPrimary(), 'primary');
      this.#wrote = true;
      this.#fresh = false;
      this.#binding!.client.query(submittable);
    });
    this.#tail = run
      .catch((err: Error) => {
        const handler = (submittable as { handleError?: (err: Error) => void }).handleError;
        if (typeof handler === 'function') handler.call(submittable, err);
      })
      .then(this.#settle);
    return submittable;
  }

  #assertHeld(): void {
    if (this.#released) throw new RouterError('released', 'query() called on a client after release(): check out another with connect()');
  }

  /** A routed read of an unbound client (the per-statement path of `reads-first`) without an async frame; everything else through {@link #run}. */
  #start(statement: Statement, values: unknown[] | undefined): Promise<pg.QueryResult> {
    if (this.#released) return Promise.reject(new RouterError('released', 'query() called on a client after release(): check out another with connect()'));
    const settings = this.#settings;
    if (this.#state === 'unbound' && settings.checkout === 'reads-first' && !settings.host.explicit) {
      const text = statementText(statement);
      // (A BEGIN is never a read: the read-only transaction case is #run's.)
      if (settings.host.isRead(text)) {
        const session = this.#session;
        return session ? session.read(statement, values) : settings.router.read(statement, values);
      }
    }
    return this.#run(statement, values);
  }

  async #run(statement: Statement, values: unknown[] | undefined): Promise<pg.QueryResult> {
    this.#assertHeld();
    const { host, router } = this.#settings;
    const session = this.#session;
    const text = statementText(statement);
    if (this.#state === 'unbound') {
      if (this.#settings.readOnlyOnReplicas && isReadOnlyBegin(text)) {
        return this.#beginReadOnly(statement, values);
      }
      if (this.#settings.checkout === 'reads-first' && !host.explicit && host.isRead(text)) {
        return session ? session.read(statement, values) : router.read(statement, values);
      }
      this.#bind(await host.bindPrimary(), 'primary');
    }
    if (this.#state === 'primary') return this.#onPrimary(statement, values, text);
    return this.#inReadOnlyTransaction(statement, values, text);
  }

  /** A read-only transaction's `BEGIN`: on a replica (retried on the next one when its connection fails). */
  async #beginReadOnly(statement: Statement, values: unknown[] | undefined): Promise<pg.QueryResult> {
    const { host } = this.#settings;
    const session = this.#session;
    for (let attempt = 0; ; attempt++) {
      const binding = await host.bindReadOnly(session?.token ?? null);
      this.#bind(binding, 'read-only-tx');
      this.#dirty = false;
      try {
        const result = await this.#raw(binding)(statement, values);
        this.#inTxByText = true;
        return result;
      } catch (err) {
        this.#unbind(err as Error);
        if (!isConnectionError(err) || attempt >= 2) throw err;
      }
    }
  }

  async #inReadOnlyTransaction(statement: Statement, values: unknown[] | undefined, text: string): Promise<pg.QueryResult> {
    const binding = this.#binding!;
    try {
      return await this.#raw(binding)(statement, values);
    } finally {
      if (this.#state === 'read-only-tx') {
        if (!isTransactionControl(text) && !this.#settings.host.isRead(text)) this.#dirty = true;
        this.#trackText(text);
        if (this.getTransactionStatus() === 'I') {
          // The transaction is over: give the connection back unless the session may hold state there.
          if (this.#dirty) this.#state = 'sticky';
          else this.#unbind(undefined);
        }
      }
    }
  }

  async #onPrimary(statement: Statement, values: unknown[] | undefined, text: string): Promise<pg.QueryResult> {
    const { host } = this.#settings;
    const session = this.#session;
    const wantToken = session !== undefined || host.processWideToken;
    for (let rebinds = 0; ; rebinds++) {
      const binding = this.#binding!;
      const fresh = this.#fresh;
      this.#fresh = false;
      const before = this.getTransactionStatus();
      const read = host.isRead(text);
      const begin = isBegin(text);
      const autocommitWrite = before === 'I' && !read && !begin && !isTransactionControl(text);
      if (!read && !isTransactionControl(text)) this.#wrote = true;
      try {
        if (fresh && begin && !isReadOnlyBegin(text)) {
          // A primary a switchover already drained starts read-only transactions: ask on the same round trip.
          const { result, follow } = await queryThen<pg.QueryResultRow, { ro: string }>(binding.client, statement, values, READ_ONLY_SETTING);
          this.#trackText(text);
          if (follow?.rows[0]?.ro === 'on' && rebinds < MAX_REBINDS) {
            await this.#raw(binding)('ROLLBACK').catch(() => {});
            await this.#rebind();
            continue;
          }
          return result;
        }
        if (wantToken && (autocommitWrite || (before === 'T' && isCommit(text) && this.#wrote))) {
          const { result, lsn, broken } = await queryThenLsn(binding.client, statement, values);
          this.#trackText(text);
          this.#broken = broken;
          if (this.getTransactionStatus() === 'I') await this.#noteCommit(binding, lsn);
          return result;
        }
        const result = await this.#raw(binding)(statement, values);
        this.#trackText(text);
        if (wantToken && this.#wrote && this.getTransactionStatus() === 'I' && !read) await this.#noteCommit(binding, null);
        return result;
      } catch (err) {
        this.#trackText(text);
        // Refused by a primary made read-only (a switchover the router has not heard of yet): nothing ran.
        const refused = sqlState(err) === '25006' && autocommitWrite;
        // A BEGIN whose connection failed did nothing either.
        const lostBegin = begin && isConnectionError(err);
        if (fresh && (refused || lostBegin) && rebinds < MAX_REBINDS) {
          if (lostBegin) this.#broken = err as Error;
          await this.#rebind();
          continue;
        }
        throw err;
      }
    }
  }

  async #noteCommit(binding: Binding, lsn: string | null): Promise<void> {
    this.#wrote = false;
    const { host } = this.#settings;
    const session = this.#session;
    const token = await host.tokenAfterCommit(binding, lsn);
    host.noteToken(token);
    session?.observe(encodeToken(token));
  }

  /** Gives the connection back and takes one on the (new) primary, after reloading the topology. */
  async #rebind(): Promise<void> {
    const broken = this.#broken;
    this.#broken = undefined;
    this.#unbind(broken);
    await this.#settings.host.refresh();
    this.#bind(await this.#settings.host.bindPrimary(), 'primary');
  }

  #raw(binding: Binding): RawQuery {
    const client = binding.client;
    return (statement, values) => (client.query as unknown as RawQuery).call(client, statement, values);
  }

  /** Follows BEGIN / COMMIT / ROLLBACK by text, for a node-postgres that does not report the server's transaction status. */
  #trackText(text: string): void {
    if (isBegin(text)) this.#inTxByText = true;
    else if (isTransactionControl(text) && /^\s*(COMMIT|END|ROLLBACK|ABORT)\b(?!\s+TO\b)/i.test(text)) this.#inTxByText = false;
  }

  #bind(binding: Binding, state: ClientState): void {
    this.#binding = binding;
    this.#state = state;
    this.#fresh = true;
    this.#inTxByText = false;
    this.#forwarders ??= new Map();
    for (const event of FORWARDED_EVENTS) {
      const forward = (...args: unknown[]) => {
        if (event === 'error' && this.listenerCount('error') === 0) return;
        this.emit(event, ...args);
      };
      this.#forwarders.set(event, forward);
      binding.client.on(event, forward);
    }
  }

  #unbind(err: Error | undefined): void {
    const binding = this.#binding;
    this.#binding = null;
    this.#state = 'unbound';
    if (!binding) return;
    if (this.#forwarders) {
      for (const [event, forward] of this.#forwarders) binding.client.off(event, forward);
      this.#forwarders.clear();
    }
    binding.client.release(err);
  }

  /**
   * Gives the client back, as `pg.PoolClient#release()`: with an error (or
   * `true`) its connection is destroyed instead of going back to its pool.
   * @throws Error when called twice (pg-pool's message).
   */
  release(err?: Error | boolean): void {
    if (this.#released) throw new Error(DOUBLE_RELEASE_MESSAGE);
    this.#released = true;
    const broken = this.#broken;
    this.#broken = undefined;
    const destroy = err === true ? new Error('released with destroy') : err || broken;
    this.#unbind(destroy || undefined);
    this.#settings.onRelease(this);
  }
}
