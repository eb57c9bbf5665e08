import type { AuthorityStore, ChangeLock, RemediationLedger } from '@pgreplica/bus';
import type { BusEventPayload, BusEventType } from '@pgreplica/protocol';
import type { Config } from '@pgreplica/runtime';
import type { Logger } from 'pino';
import type { ClusterAccess } from './cluster-access.js';

/** What a job processor gets. */
export interface JobContext {
  config: Config;
  cluster: ClusterAccess;
  /** The primary record (signed), pause switch and stored snapshot on the bus. */
  authority: AuthorityStore;
  /** The cluster's change lock (one change of primary at a time). */
  changeLock: ChangeLock;
  /** The worker's state on Redis (signed with the bus key): promotion progress, last failover, slot first-seen times, synchronous standbys. */
  ledger: RemediationLedger;
  logger: Logger;
  /** Aborted when the worker shuts down: checked before every destructive step. */
  signal: AbortSignal | undefined;
  /** Publishes on the bus under the current term, with the given epoch. */
  publish<T extends BusEventType>(type: T, payload: BusEventPayload<T>, epoch: number): Promise<void>;
  /**
   * Records a change to the cluster as it is made. A job that fails reports
   * exactly this list (remediation.failed.changed and the job's failure).
   */
  changed: string[];
}

/**
 * How long the change lock outlives a worker that died holding it (it is
 * renewed every third of this while held; the same job re-delivered takes it
 * over at once).
 */
export const CHANGE_LOCK_TTL_MS = 5_000;

/** Throws when the worker is shutting down, before a destructive step. */
export function checkAbort(ctx: JobContext, step: string): void {
  if (ctx.signal?.aborted) throw new Error(`worker shutting down: stopped before ${step}`);
}

/** Polls `check` every 50 ms until it is true or `timeoutMs` passes; returns whether it became true. */
export async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return true;
    } catch {
      // not yet
    }
    if (Date.now() >= deadline || signal?.aborted) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
