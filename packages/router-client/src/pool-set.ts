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

const IDENTITY = `pg_is_in_recovery() AS in_recovery, (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier`;
/** Who the server is, and the newest epoch its own database records (pgreplica.epoch, written on each new primary). */
const FENCE_QUERY = `SELECT ${IDENTITY}, (SELECT max(epoch)::float8 FROM pgreplica.epoch) AS epoch`;
/** The same on a server without pgreplica's tables (a cluster whose monitor may not create them) or where the role may not read them. */
const FENCE_QUERY_NO_EPOCH = `SELECT ${IDENTITY}, NULL::float8 AS epoch`;
const NO_EPOCH_TABLE = new Set(['42P01', '3F000', '42501']);

/** A write connection's server, as the fence check saw it. */
export interface FenceCheck {
  inRecovery: boolean;
  systemIdentifier: string;
  /** The newest epoch the server's database records; null without pgreplica's tables. */
  epoch: number | null;
}

/**
 * One `pg.Pool` per node, created on first use and drained when the node
 * leaves the topology. Client-side fencing, by the database itself: a
 * connection used for writes is checked before its first write in each epoch
 * — not in recovery, the cluster's system identifier once that is known, and
 * the epoch its own database records not below the router's (a deposed
 * primary keeps the epoch it was deposed in, even when it is restarted
 * writable and whatever the bus says). A server recording a later epoch than
 * the router knows is the newer primary: written to, and reported.
 */
export class PoolSet {
  readonly #pools = new Map<string, { pool: pg.Pool; host: string; port: number }>();
  readonly #connection: ConnectionOptions;
  readonly #poolOptions: PoolOptions;
  readonly #onError: (err: Error, nodeId: string) => void;
  readonly #onNewerEpoch: ((nodeId: string, epoch: number) => void) | undefined;
  readonly #fencedAt = new WeakMap<pg.PoolClient, number>();
  /** Write clients checked out now, with the epoch they were fenced for. */
  readonly #writing = new Map<pg.PoolClient, number>();
  /** Called with each node pool, existing and new (see {@link watch}). */
  readonly #watchers = new Set<(pool: pg.Pool, nodeId: string) => void>();

  /** `onNewerEpoch` hears of a write server that records a later epoch than the router knows (its view is behind). */
  constructor(connection: ConnectionOptions, poolOptions: PoolOptions, onError: (err: Error, nodeId: string) => void, onNewerEpoch?: (nodeId: string, epoch: number) => void) {
    this.#connection = connection;
    this.#poolOptions = poolOptions;
    this.#onError = onError;
    this.#onNewerEpoch = onNewerEpoch;
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
    pool.on('release', (_err: Error | undefined, client: pg.PoolClient) => this.#writing.delete(client));
    this.#pools.set(node.id, { pool, host: node.host, port: node.port });
    for (const watcher of this.#watchers) watcher(pool, node.id);
    return pool;
  }

  /**
   * A client for a write on `node`, fenced for `epoch`.
   * @throws RouterError (`fenced`) when the server is in recovery, foreign, or deposed; the client is destroyed.
   */
  async writeClient(node: NodeState, epoch: number, systemIdentifier: string | null): Promise<pg.PoolClient> {
    const client = await this.pool(node).connect();
    if (this.#fencedAt.get(client) === epoch) {
      this.#writing.set(client, epoch);
      return client;
    }
    let check: FenceCheck;
    try {
      check = await fenceCheck(client);
    } catch (err) {
      client.release(err as Error);
      throw err;
    }
    const refusal = fenceRefusal(node.id, check, epoch, systemIdentifier);
    if (refusal) {
      client.release(true);
      throw new RouterError('fenced', refusal);
    }
    if (check.epoch !== null && check.epoch > epoch) this.#onNewerEpoch?.(node.id, check.epoch);
    this.#fencedAt.set(client, epoch);
    this.#writing.set(client, epoch);
    return client;
  }

  /**
   * Cuts the connections of writes still running on a primary of an epoch
   * before `epoch` (a hung primary that was replaced): those writes fail at
   * once, unacknowledged, instead of hanging until the old primary answers
   * — and perhaps committing on a dead timeline then. They are not retried
   * (they may have run). Returns how many were cut.
   */
  abandonWritesBefore(epoch: number): number {
    let cut = 0;
    for (const [client, fencedFor] of this.#writing) {
      if (fencedFor >= epoch) continue;
      this.#writing.delete(client);
      (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
      cut++;
    }
    return cut;
  }

  /**
   * Calls `fn` with every node pool now and with each one created later
   * (e.g. to forward its events); returns the function that stops it.
   */
  watch(fn: (pool: pg.Pool, nodeId: string) => void): () => void {
    this.#watchers.add(fn);
    for (const [id, entry] of this.#pools) fn(entry.pool, id);
    return () => this.#watchers.delete(fn);
  }

  /** The node pools' client counts, added up (pg-pool's `totalCount`, `idleCount`, `waitingCount`). */
  counts(): { total: number; idle: number; waiting: number } {
    let total = 0;
    let idle = 0;
    let waiting = 0;
    for (const { pool } of this.#pools.values()) {
      total += pool.totalCount;
      idle += pool.idleCount;
      waiting += pool.waitingCount;
    }
    return { total, idle, waiting };
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

/** Reads what {@link fenceRefusal} judges, on any client. */
export async function fenceCheck(client: pg.ClientBase): Promise<FenceCheck> {
  let row: { in_recovery: boolean; system_identifier: string; epoch: number | null } | undefined;
  try {
    row = (await client.query(FENCE_QUERY)).rows[0];
  } catch (err) {
    if (!NO_EPOCH_TABLE.has((err as { code?: string }).code ?? '')) throw err;
    row = (await client.query(FENCE_QUERY_NO_EPOCH)).rows[0];
  }
  return { inRecovery: row?.in_recovery === true, systemIdentifier: String(row?.system_identifier), epoch: row?.epoch ?? null };
}

/** Why a server must not take this router's writes in `epoch`; null when it may. Pure. */
export function fenceRefusal(nodeId: string, check: FenceCheck, epoch: number, systemIdentifier: string | null): string | null {
  if (check.inRecovery) return `node ${nodeId} is in recovery: not the primary of epoch ${epoch}; refusing to write there`;
  if (systemIdentifier !== null && check.systemIdentifier !== systemIdentifier) {
    return `node ${nodeId} has system identifier ${check.systemIdentifier}, the cluster ${systemIdentifier}; refusing to write there`;
  }
  if (check.epoch !== null && check.epoch < epoch) {
    return `node ${nodeId} records epoch ${check.epoch}, the cluster is at epoch ${epoch}: a deposed primary; refusing to write there`;
  }
  return null;
}
