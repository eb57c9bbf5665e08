import { type PrimaryRecord, parsePrimaryRecord } from '@pgreplica/protocol';
import { BusKeyed } from './bus-keyed.js';
import { runScript } from './scripts.js';

/** What the bus holds as authority: the primary record, the pause flag and the current term. */
export interface AuthorityView {
  /** The primary record; null when absent or not valid. */
  record: PrimaryRecord | null;
  /** The raw value, so a caller can tell "absent" from "not valid". */
  raw: string | null;
  paused: boolean;
  term: number;
}

/**
 * Reads and writes the `…:primary` record (which node is primary in which
 * epoch), the pause switch and the stored snapshot. The record changes only
 * with an epoch bump, by compare-and-set.
 */
export class AuthorityStore extends BusKeyed {
  /** The record, the pause flag and the term, in one round trip. */
  async read(): Promise<AuthorityView> {
    const [raw, paused, term] = await this.redis.mget(this.keys.primary, this.keys.paused, this.keys.term);
    return { record: parsePrimaryRecord(raw ?? null), raw: raw ?? null, paused: paused !== null && paused !== undefined, term: Number(term ?? 0) };
  }

  /** The current primary record; null when absent or not valid. */
  async primaryRecord(): Promise<PrimaryRecord | null> {
    return parsePrimaryRecord(await this.redis.get(this.keys.primary));
  }

  /** Writes the first record; returns it, or null when another instance was first. */
  async bootstrap(primaryId: string, systemIdentifier: string, minEpoch: number): Promise<PrimaryRecord | null> {
    const draft: PrimaryRecord = { epoch: 1, primaryId, systemIdentifier, at: new Date().toISOString(), cause: 'bootstrap' };
    const epoch = Number(await runScript(this.redis, 'authority-bootstrap', [this.keys.primary, this.keys.epoch], [JSON.stringify(draft), Math.max(1, minEpoch)]));
    return epoch > 0 ? { ...draft, epoch } : null;
  }

  /** Compare-and-set of the primary record with an epoch bump; the new record, or null when the epoch moved on. */
  async bumpEpoch(expectedEpoch: number, next: Omit<PrimaryRecord, 'epoch'>): Promise<PrimaryRecord | null> {
    const epoch = Number(await runScript(this.redis, 'epoch-bump', [this.keys.primary, this.keys.epoch], [expectedEpoch, JSON.stringify({ ...next, epoch: 0 })]));
    return epoch > 0 ? { ...next, epoch } : null;
  }

  /** Whether automatic remediation is paused cluster-wide. */
  async paused(): Promise<boolean> {
    return (await this.redis.exists(this.keys.paused)) === 1;
  }

  /** Pauses (or resumes) automatic remediation cluster-wide. */
  async setPaused(paused: boolean): Promise<void> {
    if (paused) await this.redis.set(this.keys.paused, new Date().toISOString());
    else await this.redis.del(this.keys.paused);
  }

  /** The latest snapshot event as stored (the caller verifies it). */
  async snapshotRaw(): Promise<string | null> {
    return this.redis.get(this.keys.topology);
  }
}
