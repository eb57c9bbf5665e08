import type { AuthorityStore } from '@pgreplica/bus';
import { type AuthorityResolution, resolveAuthority } from '@pgreplica/decisions';
import type { Authority, ProbeResult } from '@pgreplica/probe';
import type { AuthorityRejection, PrimaryRecord, Topology } from '@pgreplica/protocol';
import type { Logger } from 'pino';

/** Runs a statement on a node (the monitor's probe connection to it). */
export type NodeExec = (nodeId: string, sql: string, params: unknown[]) => Promise<unknown>;

/**
 * The monitor's idea of who is primary in which epoch. The database is the
 * durable truth (`pgreplica.epoch`, written by the worker on each new primary
 * before it is announced); the bus holds a copy. Each round resolves the two
 * ({@link resolveAuthority}): the highest epoch wins, nothing goes below an
 * epoch already seen, and a leader repairs a bus that is behind or empty —
 * so an empty Redis never resets routers or fences the real primary.
 */
export class AuthorityTracker {
  readonly #store: AuthorityStore;
  readonly #logger: Logger;
  #bus: PrimaryRecord | null = null;
  #record: PrimaryRecord | null = null;
  #paused = false;
  #floorEpoch = 0;
  #pending: AuthorityResolution | null = null;
  /** The bus value last read and not trusted (replaced when the bus is repaired). */
  #untrusted: string | null = null;
  #lastWarning = '';
  readonly #onRejected: (key: 'primary' | 'paused', reason: AuthorityRejection) => void;

  /** @param onRejected called for each read that found an untrusted value (for a counter). */
  constructor(store: AuthorityStore, logger: Logger, onRejected: (key: 'primary' | 'paused', reason: AuthorityRejection) => void = () => {}) {
    this.#store = store;
    this.#logger = logger;
    this.#onRejected = onRejected;
  }

  /** The primary record, once known. */
  get record(): PrimaryRecord | null {
    return this.#record;
  }

  /** Whether automatic remediation is paused (as last read). */
  get paused(): boolean {
    return this.#paused;
  }

  /** Reads the bus record, pause flag and term. Returns the term. Throws when Redis fails. */
  async refresh(): Promise<number> {
    const view = await this.#store.read();
    this.#untrusted = view.recordRejection ? view.raw : null;
    if (view.recordRejection) {
      this.#onRejected('primary', view.recordRejection);
      this.#warn(`the primary record on the bus is ${describe(view.recordRejection)}: ignoring it (the databases' epoch records decide; the leader rewrites it)`);
    }
    if (view.pauseRejection) {
      this.#onRejected('paused', view.pauseRejection);
      this.#warn(`the pause flag on the bus is ${describe(view.pauseRejection)}: ignoring it (automatic remediation is NOT paused; pgreplica pause writes a signed one)`);
    }
    this.#bus = view.record;
    this.#paused = view.paused;
    return view.term;
  }

  /**
   * The authority to judge this round by, from the bus record and every
   * reachable node's epoch row; before any record exists, the one writable
   * node (else what the last topology said). Returns whether the epoch changed.
   */
  resolve(probes: readonly ProbeResult[], previous: Topology | null): { authority: Authority; epochChanged: boolean } {
    const nodes = probes.flatMap((p) => (p.ok ? [{ nodeId: p.nodeId, writable: !p.sample.inRecovery, systemIdentifier: p.sample.systemIdentifier, row: p.sample.epoch }] : []));
    const resolution = resolveAuthority({ bus: this.#bus, nodes, floorEpoch: this.#floorEpoch });
    this.#pending = null;
    const before = this.#record?.epoch ?? null;
    if (resolution.kind === 'record') {
      if (resolution.repairBus) {
        this.#warn(resolution.reason);
        this.#pending = resolution;
      }
      if (this.#record && resolution.record.epoch !== this.#record.epoch) this.#logger.info({ from: this.#record, to: resolution.record }, 'primary epoch changed');
      this.#record = resolution.record;
      this.#floorEpoch = Math.max(this.#floorEpoch, resolution.record.epoch);
    } else if (resolution.kind === 'bootstrap') {
      this.#pending = resolution;
    } else if (this.#bus || nodes.some((n) => n.row)) {
      this.#warn(resolution.reason);
    }
    const formerPrimaryIds = this.#record?.previousPrimaryId ? [this.#record.previousPrimaryId] : [];
    const epochChanged = (this.#record?.epoch ?? null) !== before;
    if (this.#record) return { authority: { ...this.#record, formerPrimaryIds }, epochChanged };
    const boot = resolution.kind === 'bootstrap' ? resolution : null;
    return {
      authority: {
        epoch: previous?.epoch ?? 0,
        primaryId: boot?.primaryId ?? previous?.primaryId ?? null,
        systemIdentifier: boot?.systemIdentifier ?? previous?.systemIdentifier ?? null,
        formerPrimaryIds,
      },
      epochChanged,
    };
  }

  /**
   * What only the leader does: records the first primary (its epoch row in
   * that node's database first, then the bus), or repairs a bus that is
   * behind the databases. Returns whether the bus changed. Throws on failure
   * (retried next round).
   */
  async settle(exec: NodeExec, epochRowSql: string, rowParams: (record: PrimaryRecord) => unknown[]): Promise<boolean> {
    const pending = this.#pending;
    if (!pending) return false;
    if (pending.kind === 'bootstrap') {
      const record: PrimaryRecord = { epoch: pending.epoch, primaryId: pending.primaryId, systemIdentifier: pending.systemIdentifier, at: new Date().toISOString(), cause: 'bootstrap' };
      await exec(pending.primaryId, epochRowSql, rowParams(record));
      if (!(await this.#store.raise(record, this.#untrusted))) return false;
      this.#record = record;
      this.#floorEpoch = Math.max(this.#floorEpoch, record.epoch);
      this.#logger.info({ primaryId: record.primaryId, epoch: record.epoch }, 'recorded the first primary (database, then bus)');
      return true;
    }
    if (pending.kind === 'record' && pending.repairBus) {
      const written = await this.#store.raise(pending.record, this.#untrusted);
      if (written) this.#logger.warn({ epoch: pending.record.epoch, primaryId: pending.record.primaryId }, 'restored the primary record on the bus from the databases');
      return written;
    }
    return false;
  }

  #warn(message: string): void {
    if (message === this.#lastWarning) return;
    this.#lastWarning = message;
    this.#logger.warn(message);
  }
}

function describe(rejection: AuthorityRejection): string {
  return rejection === 'malformed' ? 'not valid' : rejection === 'unsigned' ? 'not signed (written without the bus key)' : 'signed with another key';
}

/** The parameters of `EPOCH_WRITE_QUERY` for a record. */
export function epochRowParams(record: PrimaryRecord): unknown[] {
  return [record.epoch, record.primaryId, record.systemIdentifier, record.cause, record.previousPrimaryId ?? null, record.at, null];
}
