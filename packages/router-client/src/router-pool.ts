import type { EventEmitter } from 'node:events';
import pg from 'pg';
import { RouterError } from './errors.js';
import type { PoolHost } from './pool-host.js';
import type { Router } from './router.js';
import { type CheckoutMode, RouterPoolClient, type RouterPoolClientSettings } from './router-pool-client.js';
import type { Session } from './session.js';
import { currentSession } from './session-context.js';
import { describe, isStatement, type Statement } from './statement.js';

/** Options of `router.asPool()`. */
export interface RouterPoolOptions {
  /**
   * What a client from `connect()` does before it is pinned.
   * `'primary'`: its first statement pins it to the primary (as with
   * `pg.Pool`, one connection for the checkout). `'reads-first'`: its reads
   * are routed like `pool.query()` until its first statement that is not a
   * read, which pins the primary — for drivers that check a client out for
   * every statement (Kysely's `PostgresDialect`, Knex's `connectionPool`).
   * Either way a first `BEGIN … READ ONLY` may run on a replica
   * (`readOnlyTransactions`).
   * @default 'primary'
   */
  checkout?: CheckoutMode;
  /** Where a checked-out client runs a read-only transaction it starts with (`BEGIN READ ONLY`). @default 'replica' */
  readOnlyTransactions?: 'replica' | 'primary';
  /** `end()` also closes the router (as `pg.Pool#end()` closes every connection); false when several faces share it. @default true */
  endRouter?: boolean;
  /** Every statement runs in this session (its token honoured and raised). Without it, the session of `runWithSession()`, if any. */
  session?: Session;
}

/** Defaults of {@link RouterPoolOptions}. */
export const DEFAULT_ROUTER_POOL_OPTIONS = Object.freeze({ checkout: 'primary', readOnlyTransactions: 'replica', endRouter: true } as const);

/** pg-pool's messages, which callers of pg match. */
const ENDED_MESSAGE = 'Cannot use a pool after calling end on the pool';
const END_TWICE_MESSAGE = 'Called end on pool more than once';

type QueryCallback = (err: Error | undefined, result?: pg.QueryResult) => void;
type ConnectCallback = (err: Error | undefined, client: pg.PoolClient | undefined, done: (release?: Error | boolean) => void) => void;

const NOOP_DONE = () => {};
/** Released clients a face keeps for reuse. */
const MAX_FREE_CLIENTS = 64;
const FORWARDED_EVENTS: ReadonlySet<string | symbol> = new Set(['connect', 'acquire', 'release', 'remove', 'error']);

/**
 * A `pg.Pool` whose connections are the router's (`router.asPool()`): it is
 * an instance of `pg.Pool` (drivers check that), and overrides what they
 * call.
 *
 * * `query()` — text or `QueryConfig` (`name`, `rowMode`, `types`), values,
 *   promise or callback — is routed like `router.query()`: reads to a
 *   replica, writes to the primary (retried through a switchover), within the
 *   current session. A named statement is prepared on each connection that
 *   runs it (node-postgres keeps them per connection).
 * * `connect()` gives a {@link RouterPoolClient}, pinned to one node.
 * * Events, as pg-pool's, of every node's connections: `connect` (a new
 *   connection, before its first use: set it up there), `acquire`,
 *   `release`, `remove`, and `error` (an idle connection failed; emitted
 *   only when listened to — the router's own `error` event reports it too).
 * * `totalCount`, `idleCount`, `waitingCount` add up the node pools.
 * * `end()` waits for the checked-out clients, then (by default) closes the
 *   router; `query()` and `connect()` then reject, as pg-pool's do.
 */
export class RouterPool extends pg.Pool {
  /** The router behind this face. */
  readonly router: Router;
  readonly #host: PoolHost;
  readonly #readOnlyOnReplicas: boolean;
  readonly #endRouter: boolean;
  readonly #session: Session | undefined;
  readonly #checkedOut = new Set<RouterPoolClient>();
  /** Released clients to hand out again (pg-pool reuses its clients too; Kysely caches its wrapper per client). */
  readonly #free: RouterPoolClient[] = [];
  readonly #clientSettings: RouterPoolClientSettings;
  readonly #detach: (() => void)[] = [];
  #unwatch: (() => void) | undefined;
  #drained: (() => void) | undefined;
  #ending = false;

  static {
    // pg-pool's counts are getters on its prototype (typed as fields, so not overridable as accessors): these add up the node pools the face stands for.
    const counts = (pool: RouterPool) => pool.#host.counts();
    Object.defineProperties(RouterPool.prototype, {
      totalCount: { configurable: true, get: function (this: RouterPool) { return counts(this).total; } },
      idleCount: { configurable: true, get: function (this: RouterPool) { return counts(this).idle; } },
      waitingCount: { configurable: true, get: function (this: RouterPool) { return counts(this).waiting; } },
      expiredCount: { configurable: true, get: () => 0 },
    });
  }

  /** @internal use `router.asPool()` */
  constructor(router: Router, host: PoolHost, options: RouterPoolOptions = {}) {
    super({ ...host.poolOptions });
    const checkout = options.checkout ?? DEFAULT_ROUTER_POOL_OPTIONS.checkout;
    if (checkout !== 'primary' && checkout !== 'reads-first') throw new RouterError('invalid-option', `asPool(): checkout must be 'primary' or 'reads-first', got ${String(checkout)}`);
    const readOnly = options.readOnlyTransactions ?? DEFAULT_ROUTER_POOL_OPTIONS.readOnlyTransactions;
    if (readOnly !== 'replica' && readOnly !== 'primary') throw new RouterError('invalid-option', `asPool(): readOnlyTransactions must be 'replica' or 'primary', got ${String(readOnly)}`);
    this.router = router;
    this.#host = host;
    this.#readOnlyOnReplicas = readOnly === 'replica';
    this.#endRouter = options.endRouter ?? DEFAULT_ROUTER_POOL_OPTIONS.endRouter;
    this.#session = options.session;
    this.#clientSettings = {
      host,
      router,
      checkout,
      readOnlyOnReplicas: this.#readOnlyOnReplicas,
      onRelease: (c) => {
        this.#checkedOut.delete(c);
        if (this.#free.length < MAX_FREE_CLIENTS && c.recyclable()) this.#free.push(c);
        if (this.#checkedOut.size === 0) this.#drained?.();
      },
    };
    // Forward the node pools' events only once someone listens: a face per request costs no listener on the pools.
    const watch = (event: string | symbol) => {
      if (!FORWARDED_EVENTS.has(event) || this.#unwatch || this.#ending) return;
      this.#unwatch = host.watchPools((pool) => this.#forward(pool));
      (this as EventEmitter).off('newListener', watch);
    };
    (this as EventEmitter).on('newListener', watch);
  }

  #forward(nodePool: pg.Pool): void {
    const pool = nodePool as EventEmitter;
    const listeners: [string, (...args: unknown[]) => void][] = [
      ['connect', (client) => this.emit('connect', client)],
      ['acquire', (client) => this.emit('acquire', client)],
      ['release', (err, client) => this.emit('release', err, client)],
      ['remove', (client) => this.emit('remove', client)],
      [
        'error',
        (err, client) => {
          if (this.listenerCount('error') > 0) this.emit('error', err, client);
        },
      ],
    ];
    for (const [event, listener] of listeners) pool.on(event, listener);
    this.#detach.push(() => {
      for (const [event, listener] of listeners) pool.off(event, listener);
    });
  }

  /** The session statements run in now: the face's, else the one of `runWithSession()`. */
  #currentSession(): Session | undefined {
    return this.#session ?? currentSession();
  }

  /**
   * Runs a statement routed by the router's rules, as `pg.Pool#query()`.
   * @throws TypeError for a `Submittable` (pg-cursor, pg-query-stream): check a client out for it.
   */
  override query<T extends pg.Submittable>(queryStream: T): T;
  override query<R extends unknown[] = unknown[], I = unknown[]>(queryConfig: pg.QueryArrayConfig<I>, values?: pg.QueryConfigValues<I>): Promise<pg.QueryArrayResult<R>>;
  override query<R extends pg.QueryResultRow = pg.QueryResultRow, I = unknown[]>(queryConfig: pg.QueryConfig<I>): Promise<pg.QueryResult<R>>;
  override query<R extends pg.QueryResultRow = pg.QueryResultRow, I = unknown[]>(queryTextOrConfig: string | pg.QueryConfig<I>, values?: pg.QueryConfigValues<I>): Promise<pg.QueryResult<R>>;
  override query<R extends unknown[] = unknown[], I = unknown[]>(queryConfig: pg.QueryArrayConfig<I>, callback: (err: Error, result: pg.QueryArrayResult<R>) => void): void;
  override query<R extends pg.QueryResultRow = pg.QueryResultRow, I = unknown[]>(queryTextOrConfig: string | pg.QueryConfig<I>, callback: (err: Error, result: pg.QueryResult<R>) => void): void;
  override query<R extends pg.QueryResultRow = pg.QueryResultRow, I = unknown[]>(queryText: string, values: pg.QueryConfigValues<I>, callback: (err: Error, result: pg.QueryResult<R>) => void): void;
  override query(config: unknown, values?: unknown, callback?: unknown): unknown {
    if (typeof values === 'function') {
      callback = values;
      values = undefined;
    }
    let run: Promise<pg.QueryResult>;
    if (typeof (config as pg.Submittable | null)?.submit === 'function') {
      // A misuse, reported where it happens (pg-pool would hand it a client and lose track of it).
      throw new TypeError('RouterPool.query() does not take a Submittable (pg-cursor, pg-query-stream): use it on a client from connect()');
    }
    if (this.#ending) {
      run = Promise.reject(new Error(ENDED_MESSAGE));
    } else if (!isStatement(config)) {
      run = Promise.reject(new TypeError(`RouterPool.query(): the first argument must be SQL text or a QueryConfig with a string text, got ${describe(config)}`));
    } else {
      const session = this.#currentSession();
      const statement = config as Statement;
      run = session ? session.query(statement, values as unknown[] | undefined) : this.router.query(statement, values as unknown[] | undefined);
    }
    if (typeof callback !== 'function') return run;
    const cb = callback as QueryCallback;
    run.then(
      (result) => cb(undefined, result),
      (err: Error) => cb(err),
    );
    return undefined;
  }

  /** Checks a client out, as `pg.Pool#connect()` (promise, or callback with `done`). It takes a connection at its first statement. */
  override connect(): Promise<pg.PoolClient>;
  override connect(callback: ConnectCallback): void;
  override connect(callback?: ConnectCallback): Promise<pg.PoolClient> | undefined {
    if (this.#ending) {
      const err = new Error(ENDED_MESSAGE);
      if (!callback) return Promise.reject(err);
      process.nextTick(() => callback(err, undefined, NOOP_DONE));
      return undefined;
    }
    const session = this.#currentSession();
    const client = this.#free.pop()?.reuse(session) ?? new RouterPoolClient(this.#clientSettings, session);
    this.#checkedOut.add(client);
    // Drivers take the face's client for a pg.PoolClient; it implements the part they call.
    const face = client as unknown as pg.PoolClient;
    if (!callback) return Promise.resolve(face);
    process.nextTick(() => callback(undefined, face, (err?: Error | boolean) => client.release(err)));
    return undefined;
  }

  /**
   * Ends the face, as `pg.Pool#end()`: new calls reject at once; resolves
   * when every checked-out client is released, after closing the router
   * (unless `endRouter: false`).
   */
  override end(): Promise<void>;
  override end(callback: () => void): void;
  override end(callback?: (err?: Error) => void): Promise<void> | undefined {
    let done: Promise<void>;
    if (this.#ending) {
      done = Promise.reject(new Error(END_TWICE_MESSAGE));
    } else {
      this.#ending = true;
      (this as { ending: boolean }).ending = true;
      done = (async () => {
        if (this.#checkedOut.size > 0) await new Promise<void>((resolve) => (this.#drained = resolve));
        this.#unwatch?.();
        for (const detach of this.#detach.splice(0)) detach();
        if (this.#endRouter) await this.#host.close();
        (this as { ended: boolean }).ended = true;
      })();
    }
    if (!callback) return done;
    done.then(
      () => callback(),
      (err: Error) => callback(err),
    );
    return undefined;
  }
}
