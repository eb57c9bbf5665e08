import pg from 'pg';
import type { NodeState } from '@pgreplica/protocol';
import { RouterError } from './errors.js';

/** Connection settings shared by every node; host and port come from the topology. */
export interface ConnectionOptions {
  user?: string | undefined;
  /** Never logged; kept out of every target description. */
  password?: string | undefined;
  database?: string | undefined;
  ssl?: pg.ClientConfig['ssl'];
  /** @default 'pgreplica-router' */
  applicationName?: string | undefined;
}

/** Per-node pool settings (node-postgres `PoolConfig`, minus where to connect). */
export type PoolOptions = Omit<pg.PoolConfig, 'host' | 'port' | 'user' | 'password' | 'database' | 'ssl' | 'connectionString'>;

const FENCE_QUERY = `SELECT pg_is_in_recovery() AS in_recovery, (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier`;

/**
 * One `pg.Pool` per node, created on first use and drained when the node
 * leaves the topology. Client-side fencing: a connection used for writes is
 * checked before its first write in each epoch — not in recovery, and the
 * cluster's system identifier once that is known — so a missed
 * `primary.changed` cannot send a write to a server that was restarted as a
 * standby, or to a foreign one. It does not catch a primary made read-only
 * (`default_transaction_read_only`, as a switchover or a soft fence does):
 * that server refuses the write with 25006, and the router retries it.
 */
export class PoolSet {
  readonly #pools = new Map<string, { pool: pg.Pool; host: string; port: number }>();
  readonly #connection: ConnectionOptions;
  readonly #poolOptions: PoolOptions;
  readonly #onError: (err: Error, nodeId: string) => void;
  readonly #fencedAt = new WeakMap<pg.PoolClient, number>();

  constructor(connection: ConnectionOptions, poolOptions: PoolOptions, onError: (err: Error, nodeId: string) => void) {
    this.#connection = connection;
    this.#poolOptions = poolOptions;
    this.#onError = onError;
  }

  /** The pool of a node, created (or re-created after an address change) on demand. */
  pool(node: Pick<NodeState, 'id' | 'host' | 'port'>): pg.Pool {
    const existing = this.#pools.get(node.id);
    if (existing && existing.host === node.host && existing.port === node.port) return existing.pool;
    if (existing) this.#drain(node.id);
    const pool = new pg.Pool({
      connectionTimeoutMillis: 3_000,
      idleTimeoutMillis: 30_000,
      allowExitOnIdle: true,
      ...this.#poolOptions,
      host: node.host,
      port: node.port,
      user: this.#connection.user,
      password: this.#connection.password,
      database: this.#connection.database,
      ssl: this.#connection.ssl,
      application_name: this.#connection.applicationName ?? 'pgreplica-router',
    });
    pool.on('error', (err) => this.#onError(err, node.id));
    // pg emits 'error' on a client whose connection dies even when the query in
    // flight already received that error; a checked-out client has no pool
    // listener then, and an unheard 'error' would crash the host. The query's
    // own rejection is what reports it.
    pool.on('connect', (client) => client.on('error', () => {}));
    this.#pools.set(node.id, { pool, host: node.host, port: node.port });
    return pool;
  }

  /**
   * A client for a write on `node`, fenced for `epoch`.
   * @throws RouterError (`fenced`) when the server is in recovery or foreign; the client is destroyed.
   */
  async writeClient(node: NodeState, epoch: number, systemIdentifier: string | null): Promise<pg.PoolClient> {
    const client = await this.pool(node).connect();
    if (this.#fencedAt.get(client) === epoch) return client;
    let row: { in_recovery: boolean; system_identifier: string } | undefined;
    try {
      row = (await client.query(FENCE_QUERY)).rows[0];
    } catch (err) {
      client.release(err as Error);
      throw err;
    }
    if (row?.in_recovery || (systemIdentifier !== null && row?.system_identifier !== systemIdentifier)) {
      client.release(true);
      throw new RouterError(
        'fenced',
        row?.in_recovery
          ? `node ${node.id} is in recovery: not the primary of epoch ${epoch}; refusing to write there`
          : `node ${node.id} has system identifier ${row?.system_identifier}, the cluster ${systemIdentifier}; refusing to write there`,
      );
    }
    this.#fencedAt.set(client, epoch);
    return client;
  }

  /** Drains and closes pools of nodes no longer in `keep`. */
  retain(keep: ReadonlySet<string>): void {
    for (const id of this.#pools.keys()) if (!keep.has(id)) this.#drain(id);
  }

  #drain(id: string): void {
    const entry = this.#pools.get(id);
    this.#pools.delete(id);
    entry?.pool.end().catch(() => {});
  }

  async close(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.allSettled(pools.map((p) => p.pool.end()));
  }
}
