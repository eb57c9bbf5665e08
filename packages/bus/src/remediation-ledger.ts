
import { BusKeyed } from './bus-keyed.js';

/** How far the promotion of an epoch got. */
export interface PromotionProgress {
  candidateId: string;
  phase: 'promoting' | 'promoted';
  /** The candidate's replay position just before `pg_promote`. */
  startLsn?: string;
}

/** How long promotion progress is kept. */
const PROGRESS_TTL_MS = 7 * 24 * 3_600_000;

/**
 * The worker's remediation bookkeeping on Redis: the progress of each
 * epoch's promotion (so a re-delivered job resumes, never promotes twice),
 * the time of the last automatic failover (anti-flapping) and since when
 * each replication slot has been seen inactive (the slot grace period).
 */
export class RemediationLedger extends BusKeyed {
  async progress(epoch: number): Promise<PromotionProgress | null> {
    const raw = await this.redis.get(this.keys.promotion(epoch));
    return raw ? (JSON.parse(raw) as PromotionProgress) : null;
  }

  async setProgress(epoch: number, progress: PromotionProgress): Promise<void> {
    await this.redis.set(this.keys.promotion(epoch), JSON.stringify(progress), 'PX', PROGRESS_TTL_MS);
  }

  /** Forgets the progress of an epoch's promotion (it was abandoned before anything was promoted). */
  async clearProgress(epoch: number): Promise<void> {
    await this.redis.del(this.keys.promotion(epoch));
  }

  async lastFailoverAt(): Promise<number | null> {
    const raw = await this.redis.get(this.keys.lastFailover);
    return raw === null ? null : Number(raw);
  }

  async recordFailover(at: number): Promise<void> {
    await this.redis.set(this.keys.lastFailover, String(at));
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
      await this.redis.hsetnx(key, slot.slotName, String(nowMs));
      since.set(slot.slotName, Number(await this.redis.hget(key, slot.slotName)));
    }
    return since;
  }

  /** The synchronous standbys recorded for an epoch's primary (durability: synchronous). */
  async syncRecord(epoch: number): Promise<{ members: string[]; floorLsn: string | null } | null> {
    const raw = await this.redis.get(this.keys.syncStandbys(epoch));
    return raw ? (JSON.parse(raw) as { members: string[]; floorLsn: string | null }) : null;
  }

  async setSyncRecord(epoch: number, record: { members: string[]; floorLsn: string | null }): Promise<void> {
    await this.redis.set(this.keys.syncStandbys(epoch), JSON.stringify(record), 'PX', PROGRESS_TTL_MS);
  }

  /** Forgets a slot (dropped). */
  async forgetSlot(slotName: string): Promise<void> {
    await this.redis.hdel(this.keys.slotsInactiveSince, slotName);
  }
}
