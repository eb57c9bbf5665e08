
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
 * epoch's promotion (so a re-delivered job resumes, never promotes twice)
 * and the time of the last automatic failover (anti-flapping).
 */
export class PromotionLedger extends BusKeyed {
  async progress(epoch: number): Promise<PromotionProgress | null> {
    const raw = await this.redis.get(this.keys.promotion(epoch));
    return raw ? (JSON.parse(raw) as PromotionProgress) : null;
  }

  async setProgress(epoch: number, progress: PromotionProgress): Promise<void> {
    await this.redis.set(this.keys.promotion(epoch), JSON.stringify(progress), 'PX', PROGRESS_TTL_MS);
  }

  async lastFailoverAt(): Promise<number | null> {
    const raw = await this.redis.get(this.keys.lastFailover);
    return raw === null ? null : Number(raw);
  }

  async recordFailover(at: number): Promise<void> {
    await this.redis.set(this.keys.lastFailover, String(at));
  }
}
