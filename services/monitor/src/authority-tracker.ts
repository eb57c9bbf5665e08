import type { AuthorityStore } from '@pgreplica/bus';
import type { Authority } from '@pgreplica/probe';
import type { PrimaryRecord, Topology } from '@pgreplica/protocol';
import type { Logger } from 'pino';

/** A probe's answer as the tracker needs it. */
interface WritableProbe {
  ok: boolean;
  nodeId: string;
  sample?: { inRecovery: boolean; systemIdentifier: string };
}

/**
 * The monitor's idea of who is primary in which epoch: the record on the
 * bus when there is one, else a provisional one from the probes; records
 * the first primary (bootstrap) when this monitor leads and exactly one
 * node takes writes.
 */
export class AuthorityTracker {
  readonly #store: AuthorityStore;
  readonly #logger: Logger;
  #record: PrimaryRecord | null = null;
  #paused = false;

  constructor(store: AuthorityStore, logger: Logger) {
    this.#store = store;
    this.#logger = logger;
  }

  /** The primary record, once known. */
  get record(): PrimaryRecord | null {
    return this.#record;
  }

  /** Whether automatic remediation is paused (as last read). */
  get paused(): boolean {
    return this.#paused;
  }

  /**
   * Reads the record, pause flag and term from the bus. Returns the term and
   * whether the epoch changed (a new snapshot is due). Throws when Redis fails.
   */
  async refresh(): Promise<{ term: number; epochChanged: boolean }> {
    const { record, raw, paused, term } = await this.#store.read();
    if (raw !== null && record === null) this.#logger.error('primary record on the bus is not valid; ignoring it');
    let epochChanged = false;
    if (record && (this.#record === null || record.epoch !== this.#record.epoch)) {
      if (this.#record) this.#logger.info({ from: this.#record, to: record }, 'primary epoch changed');
      epochChanged = true;
    }
    if (record) this.#record = record;
    this.#paused = paused;
    return { term, epochChanged };
  }

  /**
   * The authority to judge a round by: the record, or — before there is one —
   * the one writable node, if exactly one, else what the last topology said.
   */
  current(probes: readonly WritableProbe[], previous: Topology | null): Authority {
    const formerPrimaryIds = this.#record?.previousPrimaryId ? [this.#record.previousPrimaryId] : [];
    if (this.#record) return { ...this.#record, formerPrimaryIds };
    const writable = probes.filter((p) => p.ok && p.sample && !p.sample.inRecovery);
    const only = writable.length === 1 ? writable[0] : undefined;
    return {
      epoch: previous?.epoch ?? 0,
      primaryId: only?.nodeId ?? previous?.primaryId ?? null,
      systemIdentifier: only?.sample?.systemIdentifier ?? previous?.systemIdentifier ?? null,
      formerPrimaryIds,
    };
  }

  /**
   * Records the first primary on the bus. After a Redis that lost its data the
   * epoch is kept when the primary is the same as in `previous`, else goes past
   * it; never backwards. Returns whether a record was written.
   */
  async bootstrap(primaryId: string, systemIdentifier: string, previous: Topology | null): Promise<boolean> {
    const floor = previous && previous.epoch > 0 ? (previous.primaryId === primaryId ? previous.epoch : previous.epoch + 1) : 1;
    const record = await this.#store.bootstrap(primaryId, systemIdentifier, floor);
    if (!record) return false;
    this.#record = record;
    this.#logger.info({ primaryId, epoch: record.epoch, systemIdentifier }, 'recorded the primary on the bus (bootstrap)');
    return true;
  }
}
