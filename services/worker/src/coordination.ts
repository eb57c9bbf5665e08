import { type BusKeys, type PrimaryRecord, parsePrimaryRecord } from '@pgreplica/protocol';
import type { Cluster, Redis } from 'ioredis';

/**
 * Moves the primary record to a new primary and bumps the epoch — only if the
 * record is still at `expectedEpoch` (compare-and-set), so two jobs for one
 * epoch cannot both succeed. KEYS: primary, epoch. ARGV: expected epoch, new
 * record JSON (epoch replaced). Returns the new epoch, or 0.
 */
const BUMP_EPOCH = `
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if cjson.decode(current)['epoch'] ~= tonumber(ARGV[1]) then return 0 end
local e = redis.call('INCR', KEYS[2])
if e <= tonumber(ARGV[1]) then e = tonumber(ARGV[1]) + 1; redis.call('SET', KEYS[2], e) end
local record = cjson.decode(ARGV[2])
record['epoch'] = e
redis.call('SET', KEYS[1], cjson.encode(record))
return e`;

/** Release only our own lock. KEYS: lock. ARGV: token. */
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
/** Extend only our own lock. KEYS: lock. ARGV: token, ttl. */
const EXTEND = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;

/** The worker's Redis bookkeeping: the primary record, the change lock, promotion progress, pause, anti-flapping. */
export class Coordination {
  readonly #redis: Redis | Cluster;
  readonly keys: BusKeys;

  constructor(redis: Redis | Cluster, keys: BusKeys) {
    this.#redis = redis;
    this.keys = keys;
  }

  async primaryRecord(): Promise<PrimaryRecord | null> {
    return parsePrimaryRecord(await this.#redis.get(this.keys.primary));
  }

  /** The latest snapshot event as stored (the caller verifies it). */
  async snapshotRaw(): Promise<string | null> {
    return this.#redis.get(this.keys.topology);
  }

  async paused(): Promise<boolean> {
    return (await this.#redis.exists(this.keys.paused)) === 1;
  }

  async lastFailoverAt(): Promise<number | null> {
    const raw = await this.#redis.get(this.keys.lastFailover);
    return raw === null ? null : Number(raw);
  }

  async recordFailover(at: number): Promise<void> {
    await this.#redis.set(this.keys.lastFailover, String(at));
  }

  /** Compare-and-set of the primary record; the new record, or null when the epoch moved on. */
  async bumpEpoch(expectedEpoch: number, next: Omit<PrimaryRecord, 'epoch'>): Promise<PrimaryRecord | null> {
    const epoch = Number(await this.#redis.eval(BUMP_EPOCH, 2, this.keys.primary, this.keys.epoch, expectedEpoch, JSON.stringify({ ...next, epoch: 0 })));
    return epoch > 0 ? { ...next, epoch } : null;
  }

  /**
   * Takes the cluster's change lock with a fencing token (a number that grows
   * with every grant), renewed every third of `ttlMs` until released. Null
   * when another holder has it.
   */
  async lock(ttlMs: number): Promise<{ token: string; extend(): Promise<boolean>; release(): Promise<void> } | null> {
    const token = String(await this.#redis.incr(this.keys.fence));
    const ok = await this.#redis.set(this.keys.changeLock, token, 'PX', ttlMs, 'NX');
    if (ok !== 'OK') return null;
    const extend = async () => (await this.#redis.eval(EXTEND, 1, this.keys.changeLock, token, ttlMs)) === 1;
    // Renewed while held, so a short TTL frees the lock soon after a holder dies.
    const renew = setInterval(() => void extend().catch(() => {}), Math.max(500, ttlMs / 3));
    renew.unref();
    return {
      token,
      extend,
      release: async () => {
        clearInterval(renew);
        await this.#redis.eval(RELEASE, 1, this.keys.changeLock, token);
      },
    };
  }

  /** Progress of the promotion of an epoch (so a re-delivered job resumes, never promotes twice). */
  async promotionProgress(epoch: number): Promise<{ candidateId: string; phase: 'promoting' | 'promoted'; startLsn?: string } | null> {
    const raw = await this.#redis.get(this.keys.promotion(epoch));
    return raw ? (JSON.parse(raw) as { candidateId: string; phase: 'promoting' | 'promoted'; startLsn?: string }) : null;
  }

  async setPromotionProgress(epoch: number, progress: { candidateId: string; phase: 'promoting' | 'promoted'; startLsn?: string }): Promise<void> {
    await this.#redis.set(this.keys.promotion(epoch), JSON.stringify(progress), 'PX', 7 * 24 * 3_600_000);
  }
}
