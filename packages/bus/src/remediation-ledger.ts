import { type BusKeys, openValue, sealValue } from '@pgreplica/protocol';
import type { Cluster, Redis } from 'ioredis';
import { BusKeyed } from './bus-keyed.js';
import { runScript } from './scripts.js';

/** How far the promotion of an epoch got. */
export interface PromotionProgress {
  candidateId: string;
  phase: 'promoting' | 'promoted';
  /** The candidate's replay position just before `pg_promote`. */
  startLsn?: string;
}

/** The synchronous standbys of an epoch's primary and the position the set last changed at. */
export interface SyncRecord {
  members: string[];
  floorLsn: string | null;
}

/** How long promotion progress is kept. */
const PROGRESS_TTL_MS = 7 * 24 * 3_600_000;

/**
 * Outcome of a fenced progress write: `written`; `lost-lock` when the caller
 * no longer holds the change lock (it stalled past its TTL and another run
 * took over); `other-candidate` when another candidate is recorded for the
 * epoch (or the record changed between the read and the write: read it again).
 */
export type ProgressWrite = 'written' | 'lost-lock' | 'other-candidate';

/**
 * The worker's remediation bookkeeping on Redis: the progress of each
 * epoch's promotion (so a re-delivered job resumes, never promotes twice),
 * the time of the last automatic failover (anti-flapping), since when each
 * replication slot has been seen inactive (the slot grace period) and the
 * synchronous standbys of each epoch.
 *
 * With a bus key every value is signed (bound to its key name) and checked
 * on read; a value that fails is treated as absent — the cautious reading for
 * each (no progress: start over with every check; no sync record: refuse to
 * promote; no first-seen time: the grace period starts now) — and reported
 * through `onRejected`.
 */
export class RemediationLedger extends BusKeyed {
  readonly #key: string | undefined;
  readonly #onRejected: (name: string, reason: string) => void;

  constructor(redis: Redis | Cluster, keys: BusKeys, key?: string, onRejected: (name: string, reason: string) => void = () => {}) {
    super(redis, keys);
    this.#key = key;
    this.#onRejected = onRejected;
  }

  #open(name: string, raw: string | null): unknown {
    const opened = openValue(name, raw, this.#key);
    if (opened.rejection) this.#onRejected(name, opened.rejection);
    return opened.value;
  }

  async progress(epoch: number): Promise<PromotionProgress | null> {
    const name = this.keys.promotion(epoch);
    const value = this.#open(name, await this.redis.get(name)) as PromotionProgress | null;
    return value && typeof value.candidateId === 'string' ? value : null;
  }

  /** Records progress unconditionally (tools and tests; jobs use {@link RemediationLedger.recordProgress}). */
  async setProgress(epoch: number, progress: PromotionProgress): Promise<void> {
    const name = this.keys.promotion(epoch);
    await this.redis.set(name, sealValue(name, progress, this.#key), 'PX', PROGRESS_TTL_MS);
  }

  /**
   * Records progress only while `lockValue` still holds the change lock, and
   * never over another candidate recorded (and trusted) for the epoch: a
   * compare-and-set on the value read, checked with the lock in one Lua step.
   */
  async recordProgress(epoch: number, progress: PromotionProgress, lockValue: string): Promise<ProgressWrite> {
    const name = this.keys.promotion(epoch);
    const raw = await this.redis.get(name);
    const current = this.#open(name, raw) as PromotionProgress | null;
    const other = current !== null && typeof current.candidateId === 'string' && current.candidateId !== progress.candidateId;
    return this.#fencedWrite(name, lockValue, other ? 'refuse' : 'compare', raw ?? '', sealValue(name, progress, this.#key));
  }

  /** Forgets an epoch's progress (abandoned before anything was promoted), only while `lockValue` holds the change lock. */
  async forgetProgress(epoch: number, lockValue: string): Promise<ProgressWrite> {
    return this.#fencedWrite(this.keys.promotion(epoch), lockValue, 'any', '', '');
  }

  /** `mode` and `read`: see lua/progress-write.lua; `value` '' deletes. */
  async #fencedWrite(name: string, lockValue: string, mode: 'compare' | 'any' | 'refuse', read: string, value: string): Promise<ProgressWrite> {
    const args = [lockValue, mode, read, value, PROGRESS_TTL_MS];
    const result = Number(await runScript(this.redis, 'progress-write', [this.keys.changeLock, name], args));
    return result > 0 ? 'written' : result < 0 ? 'lost-lock' : 'other-candidate';
  }

  /** Forgets the progress of an epoch's promotion unconditionally (tools and tests). */
  async clearProgress(epoch: number): Promise<void> {
    await this.redis.del(this.keys.promotion(epoch));
  }

  async lastFailoverAt(): Promise<number | null> {
    const value = this.#open(this.keys.lastFailover, await this.redis.get(this.keys.lastFailover));
    return typeof value === 'number' && Number.isFinite(value) ? value : null;
  }

  async recordFailover(at: number): Promise<void> {
    await this.redis.set(this.keys.lastFailover, sealValue(this.keys.lastFailover, at, this.#key));
  }

  /**
   * Notes which slots are inactive now: remembers when each was first seen
   * inactive (kept across runs), forgets active ones. Returns the first-seen
   * time of every inactive slot (ms).
   */
  async observeSlots(slots: readonly { slotName: string; active: boolean }[], nowMs: number): Promise<Map<string, number>> {
    const key = this.keys.slotsInactiveSince;
    const active = slots.filter((s) => s.active).map((s) => s.slotName);
    if (active.length > 0) await this.redis.hdel(key, ...active);
    const since = new Map<string, number>();
    for (const slot of slots) {
      if (slot.active) continue;
      const name = `${key}#${slot.slotName}`;
      await this.redis.hsetnx(key, slot.slotName, sealValue(name, nowMs, this.#key));
      const seen = this.#open(name, await this.redis.hget(key, slot.slotName));
      if (typeof seen === 'number' && Number.isFinite(seen) && seen <= nowMs) {
        since.set(slot.slotName, seen);
      } else {
        // Not trusted (or in the future): the grace period starts now.
        await this.redis.hset(key, slot.slotName, sealValue(name, nowMs, this.#key));
        since.set(slot.slotName, nowMs);
      }
    }
    return since;
  }

  /** The synchronous standbys recorded for an epoch's primary (durability: synchronous). */
  async syncRecord(epoch: number): Promise<SyncRecord | null> {
    const name = this.keys.syncStandbys(epoch);
    const value = this.#open(name, await this.redis.get(name)) as SyncRecord | null;
    return value && Array.isArray(value.members) ? value : null;
  }

  async setSyncRecord(epoch: number, record: SyncRecord): Promise<void> {
    const name = this.keys.syncStandbys(epoch);
    await this.redis.set(name, sealValue(name, record, this.#key), 'PX', PROGRESS_TTL_MS);
  }

  /** Forgets a slot (dropped). */
  async forgetSlot(slotName: string): Promise<void> {
    await this.redis.hdel(this.keys.slotsInactiveSince, slotName);
  }
}
