import type { BusKeys } from '@pgreplica/protocol';
import type { Cluster, Redis } from 'ioredis';

/** Renew only our own lease. KEYS: leader. ARGV: instance, ttlMs. */
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

/**
 * Take a free lease and bump the term in one step; the term never goes below
 * ARGV[3] (the highest this instance saw: a Redis that lost its data must not
 * send terms backwards). KEYS: leader, term. ARGV: instance, ttlMs, minTerm.
 * Returns the new term or 0.
 */
const ACQUIRE = `
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
local t = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3])
if t < floor then t = floor; redis.call('SET', KEYS[2], t) end
return t`;

/** Release only our own lease. KEYS: leader. ARGV: instance. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** Leadership as this instance sees it after a tick. */
export interface LeaseState {
  leader: boolean;
  /** Term of our leadership (0 when not leader). */
  term: number;
  /** Whether this tick changed leadership. */
  changed: boolean;
}

/**
 * A Redis lease electing the one monitor that publishes and enqueues. The
 * holder renews it every tick; when it stops (crash, partition), the key
 * expires after `ttlMs` and another instance takes it, bumping the term.
 * A tick that cannot reach Redis counts as losing the lease: better silent
 * than two publishers.
 */
export class LeaderLease {
  readonly #redis: Redis | Cluster;
  readonly #keys: BusKeys;
  readonly #instanceId: string;
  readonly #ttlMs: number;
  #leader = false;
  #term = 0;
  #highestSeen = 0;

  constructor(redis: Redis | Cluster, keys: BusKeys, instanceId: string, ttlMs: number) {
    this.#redis = redis;
    this.#keys = keys;
    this.#instanceId = instanceId;
    this.#ttlMs = ttlMs;
  }

  get isLeader(): boolean {
    return this.#leader;
  }

  get term(): number {
    return this.#term;
  }

  /** Notes a term seen on the bus, so a term this instance takes is always higher. */
  observeTerm(term: number): void {
    if (term > this.#highestSeen) this.#highestSeen = term;
  }

  /** Renews or tries to acquire the lease. Never throws. */
  async tick(): Promise<LeaseState> {
    const was = this.#leader;
    try {
      if (this.#leader) {
        this.#leader = (await this.#redis.eval(RENEW, 1, this.#keys.leader, this.#instanceId, this.#ttlMs)) === 1;
      }
      if (!this.#leader) {
        const term = Number(
          await this.#redis.eval(ACQUIRE, 2, this.#keys.leader, this.#keys.term, this.#instanceId, this.#ttlMs, this.#highestSeen + 1),
        );
        if (term > 0) {
          this.#leader = true;
          this.#term = term;
          this.observeTerm(term);
        }
      }
    } catch {
      this.#leader = false;
    }
    if (!this.#leader) this.#term = 0;
    return { leader: this.#leader, term: this.#term, changed: was !== this.#leader };
  }

  /** Gives the lease up so a standby takes over at once. Never throws. */
  async release(): Promise<void> {
    if (!this.#leader) return;
    this.#leader = false;
    this.#term = 0;
    await this.#redis.eval(RELEASE, 1, this.#keys.leader, this.#instanceId).catch(() => {});
  }
}
