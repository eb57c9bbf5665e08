import type { NodeState } from '@pgreplica/protocol';
import type pg from 'pg';
import { isConnectionError, RouterError, sqlState } from './errors.js';
import { INSERT_LSN_SQL } from './executor.js';
import type { RoutingParts } from './routing-parts.js';
import type { RouteReason } from './selection.js';
import type { Statement } from './statement.js';
import { type DecodedToken, primaryOnlyToken } from './tokens.js';

/** How long the token of a committed write may take to read on a fresh connection when the write's own connection could not give it. */
export const TOKEN_RETRY_TIMEOUT_MS = 1_000;

/**
 * Writes: wait for a writable primary (a switchover holds writes up to
 * `maxWritePauseMs`), run on a connection fenced for the epoch, and retry —
 * after a reload — only a write that certainly did not run: a failed
 * connect, a fencing refusal, or `25006` from a primary made read-only.
 */
export class WritePath {
  readonly #parts: RoutingParts;

  constructor(parts: RoutingParts) {
    this.#parts = parts;
  }

  /**
   * The primary, once no switchover holds writes.
   * @throws RouterError (`write-pause-timeout` or `no-primary`) at `deadline`.
   */
  async waitWritable(deadline: number): Promise<NodeState> {
    const { cluster, view, maxWritePauseMs } = this.#parts;
    const store = view.store;
    for (;;) {
      const sw = store.switchover;
      const held = sw !== null && Date.now() - sw.startedAt < maxWritePauseMs;
      const primary = held ? null : store.primary();
      if (primary) return primary;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new RouterError(
          held ? 'write-pause-timeout' : 'no-primary',
          held ? `writes held by a switchover for more than ${maxWritePauseMs} ms` : `no primary known for cluster ${cluster}`,
        );
      }
      await view.nextChange(Math.min(left, 100));
    }
  }

  /** Runs a statement on the primary; with `wantToken`, also returns the commit's token. */
  async write<R extends pg.QueryResultRow>(sql: Statement, params: unknown[] | undefined, wantToken: boolean, reason: RouteReason): Promise<{ result: pg.QueryResult<R>; token: DecodedToken | null }> {
    const { view, executor, metrics } = this.#parts;
    view.assertOpen('write()');
    const store = view.store;
    const deadline = Date.now() + this.#parts.maxWritePauseMs;
    let lastError: unknown;
    for (;;) {
      let primary: NodeState;
      try {
        primary = await this.waitWritable(deadline);
      } catch (err) {
        throw lastError && (err as RouterError).code === 'no-primary' ? lastError : err;
      }
      const epoch = store.epoch;
      const started = performance.now();
      let client: pg.PoolClient | null;
      try {
        client = await this.#connectWhileEpoch(primary, epoch);
      } catch (err) {
        if (!isConnectionError(err) || Date.now() >= deadline) throw err;
        // It certainly did not run: find the (new) primary and try again.
        lastError = err;
        executor.statsOf(primary.id).addError(Date.now());
        metrics.writeRetries.inc({ cause: (err as RouterError).code === 'fenced' ? 'fenced' : 'connect' });
        await view.refresh();
        continue;
      }
      if (client === null) {
        // A new epoch while connecting to the old primary (hung: the connection would wait for
        // its connect timeout): nothing ran; start over on the new epoch's primary.
        metrics.writeRetries.inc({ cause: 'connect' });
        continue;
      }
      if (store.epoch !== epoch) {
        // The epoch moved just as the connection opened (a hung primary that woke up after the
        // failover): it was fenced for the old epoch, which a deposed node not fenced yet still
        // records. Nothing ran: start over on the primary of the new epoch.
        client.release();
        metrics.writeRetries.inc({ cause: 'fenced' });
        continue;
      }
      let written: { result: pg.QueryResult<R>; lsn: string | null };
      try {
        written = await executor.write<R>(primary, client, started, reason, sql, params, wantToken);
      } catch (err) {
        if (sqlState(err) === '25006' && Date.now() < deadline) {
          // Refused by a read-only server (demoted): it did not run. Retry on the new primary.
          lastError = err;
          metrics.writeRetries.inc({ cause: 'read-only' });
          await view.refresh();
          continue;
        }
        // A connection lost mid-statement may or may not have run it: never retried.
        throw err;
      }
      // Committed: from here on nothing throws (a retry by the app would write twice).
      if (!wantToken) return { result: written.result, token: null };
      return { result: written.result, token: written.lsn ? { epoch, lsn: written.lsn } : await this.tokenAfterCommit(primary, epoch) };
    }
  }

  /**
   * A write client on `primary` fenced for `epoch`, or null when the epoch
   * moves on first: the connect is abandoned (its client destroyed if it
   * comes) rather than waited for.
   */
  #connectWhileEpoch(primary: NodeState, epoch: number): Promise<pg.PoolClient | null> {
    const { view, pools } = this.#parts;
    const connecting = pools.writeClient(primary, epoch, view.store.topology?.systemIdentifier ?? null);
    return new Promise((resolve, reject) => {
      let done = false;
      const cancel = view.whenEpochPasses(epoch, () => {
        if (done) return;
        done = true;
        connecting.then(
          (client) => client.release(new Error(`abandoned: epoch ${view.store.epoch} replaced ${epoch} while connecting`)),
          () => {},
        );
        resolve(null);
      });
      connecting.then(
        (client) => {
          if (done) return;
          done = true;
          cancel();
          resolve(client);
        },
        (err: unknown) => {
          if (done) return;
          done = true;
          cancel();
          reject(err);
        },
      );
    });
  }

  /**
   * The token of a write that committed on `primary` in `epoch` when its own
   * connection could not give the position: the insert position read on
   * another connection to the same server (it only grows, so it is at or
   * past the commit), within {@link TOKEN_RETRY_TIMEOUT_MS}; else a
   * primary-only token. Never throws.
   */
  async tokenAfterCommit(primary: NodeState, epoch: number): Promise<DecodedToken> {
    try {
      const { rows } = await this.#parts.pools.pool(primary).query<{ lsn: string }>({ text: INSERT_LSN_SQL, query_timeout: TOKEN_RETRY_TIMEOUT_MS } as pg.QueryConfig);
      if (rows[0]?.lsn) return { epoch, lsn: rows[0].lsn };
    } catch {
      // The primary is unreachable (a failover under way?): only it can serve the write's reads.
    }
    return primaryOnlyToken(epoch);
  }
}
