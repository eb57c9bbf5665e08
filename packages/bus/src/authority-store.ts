import { type AuthorityRejection, type PauseRecord, type PrimaryRecord, readPauseRecord, readPrimaryRecord, signRecord } from '@pgreplica/protocol';
import type { Cluster, Redis } from 'ioredis';
import type { BusKeys } from '@pgreplica/protocol';
import { BusKeyed } from './bus-keyed.js';
import { runScript } from './scripts.js';

/** What the bus holds as authority: the primary record, the pause flag and the current term. */
export interface AuthorityView {
  /** The primary record; null when absent, not valid or (with a bus key) not signed right. */
  record: PrimaryRecord | null;
  /** The raw value, so a caller can tell "absent" from "not trusted" (and replace a forged one). */
  raw: string | null;
  /** Why the primary record was not trusted; null when it was (or is absent). */
  recordRejection: AuthorityRejection | null;
  paused: boolean;
  /** Why a pause flag was not trusted; null when it was (or is absent). */
  pauseRejection: AuthorityRejection | null;
  term: number;
}

/**
 * Reads and writes the `…:primary` record (which node is primary in which
 * epoch), the pause switch and the stored snapshot. The record changes only
 * with an epoch bump, by compare-and-set. With a bus key, the records are
 * signed on write and verified on read: a value written by someone with Redis
 * access but without the key is ignored (and reported), never obeyed.
 */
export class AuthorityStore extends BusKeyed {
  readonly #key: string | undefined;

  /** @param key the bus key; without one, records are neither signed nor checked. */
  constructor(redis: Redis | Cluster, keys: BusKeys, key?: string) {
    super(redis, keys);
    this.#key = key;
  }

  /** The record, the pause flag and the term, in one round trip. */
  async read(): Promise<AuthorityView> {
    const [raw, pausedRaw, term] = await this.redis.mget(this.keys.primary, this.keys.paused, this.keys.term);
    const record = readPrimaryRecord(raw ?? null, this.#key);
    const pause = readPauseRecord(pausedRaw ?? null, this.#key);
    const termValue = Number(term ?? 0);
    return {
      record: record.value,
      raw: raw ?? null,
      recordRejection: record.rejection,
      paused: pause.value !== null,
      pauseRejection: pause.rejection,
      term: Number.isSafeInteger(termValue) && termValue >= 0 ? termValue : 0,
    };
  }

  /** The current primary record; null when absent, not valid or not signed right. */
  async primaryRecord(): Promise<PrimaryRecord | null> {
    return readPrimaryRecord(await this.redis.get(this.keys.primary), this.#key).value;
  }

  /**
   * Writes `record` (signed) when the bus has none, one with a lower epoch, or
   * exactly `untrusted` — a value the caller read and rejected (forged or
   * malformed; a forged record with a huge epoch must not block every later
   * one). Never lowers the epoch of a record it keeps. Returns whether it was written.
   */
  async raise(record: PrimaryRecord, untrusted: string | null = null): Promise<boolean> {
    return Number(await this.#raise(record, '', untrusted)) > 0;
  }

  /**
   * Announces a new primary: writes `next` (its epoch already recorded in the
   * new primary's database) only while `lockValue` still holds the change lock,
   * and only above the current epoch. `lost-lock`: another holder took the
   * lock (this caller stalled past its TTL); `epoch-moved`: the bus already
   * has this epoch or a later one.
   */
  async announce(next: PrimaryRecord, lockValue: string): Promise<'announced' | 'lost-lock' | 'epoch-moved'> {
    // A record there that is not trusted (forged) does not count as "later".
    const raw = await this.redis.get(this.keys.primary);
    const untrusted = raw !== null && readPrimaryRecord(raw, this.#key).value === null ? raw : null;
    const result = await this.#raise(next, lockValue, untrusted);
    return result > 0 ? 'announced' : result < 0 ? 'lost-lock' : 'epoch-moved';
  }

  async #raise(record: PrimaryRecord, lockValue: string, untrusted: string | null): Promise<number> {
    const signed = JSON.stringify(signRecord(record, this.#key));
    return Number(await runScript(this.redis, 'authority-raise', [this.keys.primary, this.keys.epoch, this.keys.changeLock], [signed, lockValue, untrusted ?? '']));
  }

  /** Whether automatic remediation is paused cluster-wide (an untrusted flag does not pause). */
  async paused(): Promise<boolean> {
    return readPauseRecord(await this.redis.get(this.keys.paused), this.#key).value !== null;
  }

  /** Pauses (or resumes) automatic remediation cluster-wide; `by` says who, for the record. */
  async setPaused(paused: boolean, by = 'cli'): Promise<void> {
    const record: PauseRecord = { at: new Date().toISOString(), by };
    if (paused) await this.redis.set(this.keys.paused, JSON.stringify(signRecord(record, this.#key)));
    else await this.redis.del(this.keys.paused);
  }

  /** The latest snapshot event as stored (the caller verifies it). */
  async snapshotRaw(): Promise<string | null> {
    return this.redis.get(this.keys.topology);
  }
}
