import { type BusKeys, type PrimaryRecord, parsePrimaryRecord } from '@pgreplica/protocol';
import type { Cluster, Redis } from 'ioredis';

/**
 * Records the first primary: only if no record exists, with an epoch above
 * both the counter and what this monitor saw before (a Redis that lost its
 * data must not send the epoch backwards). KEYS: primary, epoch.
 * ARGV: record JSON (epoch ignored), minimum epoch. Returns the epoch, or 0.
 */
const BOOTSTRAP = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local e = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[2])
if e < floor then e = floor; redis.call('SET', KEYS[2], e) end
local record = cjson.decode(ARGV[1])
record['epoch'] = e
redis.call('SET', KEYS[1], cjson.encode(record))
return e`;

/** Reads and bootstraps the `…:primary` record and the pause flag. */
export class AuthorityStore {
  readonly #redis: Redis | Cluster;
  readonly #keys: BusKeys;

  constructor(redis: Redis | Cluster, keys: BusKeys) {
    this.#redis = redis;
    this.#keys = keys;
  }

  /** The current record (null when none or unreadable) and whether remediation is paused. */
  async read(): Promise<{ record: PrimaryRecord | null; raw: string | null; paused: boolean; term: number }> {
    const [raw, paused, term] = await this.#redis.mget(this.#keys.primary, this.#keys.paused, this.#keys.term);
    return { record: parsePrimaryRecord(raw ?? null), raw: raw ?? null, paused: paused !== null && paused !== undefined, term: Number(term ?? 0) };
  }

  /** Writes the first record; returns it, or null when another instance was first. */
  async bootstrap(primaryId: string, systemIdentifier: string, minEpoch: number): Promise<PrimaryRecord | null> {
    const draft: PrimaryRecord = { epoch: 1, primaryId, systemIdentifier, at: new Date().toISOString(), cause: 'bootstrap' };
    const epoch = Number(await this.#redis.eval(BOOTSTRAP, 2, this.#keys.primary, this.#keys.epoch, JSON.stringify(draft), Math.max(1, minEpoch)));
    return epoch > 0 ? { ...draft, epoch } : null;
  }
}
