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

  /**
   * Writes `record` when the bus has none or one with a lower epoch (first
   * record, or the bus restored from the databases). Never lowers the epoch.
   * Returns whether it was written.
   */
  async raise(record: PrimaryRecord): Promise<boolean> {
    return Number(await runScript(this.redis, 'authority-raise', [this.keys.primary, this.keys.epoch, this.keys.changeLock], [JSON.stringify(record), ''])) > 0;
  }

  /**
   * Announces a new primary: writes `next` (its epoch already recorded in the
   * new primary's database) only while `lockValue` still holds the change lock,
   * and only above the current epoch. `lost-lock`: another holder took the
   * lock (this caller stalled past its TTL); `epoch-moved`: the bus already
   * has this epoch or a later one.
   */
  async announce(next: PrimaryRecord, lockValue: string): Promise<'announced' | 'lost-lock' | 'epoch-moved'> {
    const result = Number(await runScript(this.redis, 'authority-raise', [this.keys.primary, this.keys.epoch, this.keys.changeLock], [JSON.stringify(next), lockValue]));
    return result > 0 ? 'announced' : result < 0 ? 'lost-lock' : 'epoch-moved';
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
