import type pg from 'pg';
import { isConnectionError, RouterError } from './errors.js';
import type { ReadPath } from './read-path.js';
import type { TransactionClient, TransactionOptions } from './router-types.js';
import type { RoutingParts } from './routing-parts.js';
import { type ConsistencyToken, encodeToken } from './tokens.js';
import type { WritePath } from './write-path.js';

/**
 * Transactions: a read-only one on the first replica that qualifies and
 * connects (the primary otherwise, unbudgeted); a writing one on the
 * writable primary, retried while connecting fails, returning the commit's
 * token.
 */
export class Transactions {
  readonly #parts: RoutingParts;
  readonly #reads: ReadPath;
  readonly #writes: WritePath;

  constructor(parts: RoutingParts, reads: ReadPath, writes: WritePath) {
    this.#parts = parts;
    this.#reads = reads;
    this.#writes = writes;
  }

  /** Runs `fn` in a transaction; returns its value and the commit's token (null for read-only ones). */
  async run<T>(fn: (tx: TransactionClient) => Promise<T>, options: TransactionOptions): Promise<{ value: T; token: ConsistencyToken | null }> {
    const { view, pools, executor, metrics } = this.#parts;
    view.assertOpen('transaction()');
    if (options.readOnly) return { value: await this.#readOnly(fn, options), token: null };
    const store = view.store;
    const deadline = Date.now() + this.#parts.maxWritePauseMs;
    for (;;) {
      const primary = await this.#writes.waitWritable(deadline);
      let client: pg.PoolClient;
      try {
        client = await pools.writeClient(primary, store.epoch, store.topology?.systemIdentifier ?? null);
      } catch (err) {
        if (!isConnectionError(err) || Date.now() >= deadline) throw err;
        metrics.writeRetries.inc({ cause: 'connect' });
        await view.refresh();
        continue;
      }
      const epoch = store.epoch;
      const { value, lsn } = await executor.transaction(primary, 'primary', client, 'BEGIN', fn, true);
      // Committed: the token never throws (see WritePath.tokenAfterCommit).
      const token = lsn ? { epoch, lsn } : await this.#writes.tokenAfterCommit(primary, epoch);
      this.#parts.token.note(token);
      return { value, token: encodeToken(token) };
    }
  }

  async #readOnly<T>(fn: (tx: TransactionClient) => Promise<T>, options: TransactionOptions): Promise<T> {
    const { cluster, view, pools, executor, metrics } = this.#parts;
    const plan = this.#reads.plan(options);
    for (const { node, lsn } of plan.replicas) {
      if (plan.token && lsn === 'check' && !(await this.#reads.hasReplayed(node, plan.token.lsn).catch(() => false))) continue;
      let client: pg.PoolClient;
      try {
        client = await pools.pool(node).connect();
      } catch (err) {
        if (!isConnectionError(err)) throw err;
        executor.ban(node, err);
        continue;
      }
      return (await executor.transaction(node, 'replica', client, 'BEGIN READ ONLY', fn)).value;
    }
    const primary = view.store.primary();
    if (!primary) throw new RouterError('no-primary', `no primary known for cluster ${cluster}`);
    metrics.countFallback(plan.none ?? 'primary:transaction');
    return (await executor.transaction(primary, 'primary', await pools.pool(primary).connect(), 'BEGIN READ ONLY', fn)).value;
  }
}
