import type { NodeState } from '@pgreplica/protocol';
import type pg from 'pg';
import type { DecodedToken } from './tokens.js';

/** A physical connection a {@link RouterPoolClient} runs its statements on. */
export interface Binding {
  node: NodeState;
  client: pg.PoolClient;
  /** The role the node serves the binding in. */
  role: 'primary' | 'replica';
  /** The epoch the primary was fenced for (writes' tokens carry it). */
  epoch: number;
}

/**
 * What the pool face needs of the router's internals; the router builds it
 * (`router.asPool()`), nothing else does. @internal
 */
export interface PoolHost {
  /** Whether the classifier takes `sql` for a read (whatever the routing mode). */
  isRead(sql: string): boolean;
  /** `routing: 'explicit'`: statements that do not say where go to the primary. */
  readonly explicit: boolean;
  /** A connection to the writable primary, fenced for the epoch; waits through a switchover (`maxWritePauseMs`) and retries failed connects. */
  bindPrimary(): Promise<Binding>;
  /** A connection for a read-only transaction: a replica that qualifies (and has replayed `after`), else the primary. */
  bindReadOnly(after: string | null): Promise<Binding>;
  /** The token of a commit on `binding`: `lsn` read with it, else read again (never throws). */
  tokenAfterCommit(binding: Binding, lsn: string | null): Promise<DecodedToken>;
  /** Records a write's token in the router's own token (`consistency: 'read-your-writes'`). */
  noteToken(token: DecodedToken): void;
  /** Whether the router is one process-wide session. */
  readonly processWideToken: boolean;
  /** Reloads the topology (after a refusal), waiting for a change up to `ms`. */
  refresh(): Promise<void>;
  /** Calls `fn` with each node pool, now and later; returns the unsubscribe function. */
  watchPools(fn: (pool: pg.Pool, nodeId: string) => void): () => void;
  /** Client counts over every node pool. */
  counts(): { total: number; idle: number; waiting: number };
  /** The per-node pool options. */
  readonly poolOptions: pg.PoolConfig;
  /** Closes the router. */
  close(): Promise<void>;
}
