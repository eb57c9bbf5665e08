import type { BusKeys } from '@pgreplica/protocol';
import type { Cluster, Redis } from 'ioredis';
import { runScript } from './scripts.js';

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

  /**
   * Renews or tries to acquire the lease. Never throws. With `mayLead` false
   * (this instance reaches no PostgreSQL node while another does), gives the
   * lease up, or does not try to take it.
   */
  async tick(mayLead = true): Promise<LeaseState> {
    const was = this.#leader;
    if (!mayLead) {
      await this.release();
      return { leader: false, term: 0, changed: was };
    }
    try {
      if (this.#leader) {
        this.#leader = (await runScript(this.#redis, 'lease-renew', [this.#keys.leader], [this.#instanceId, this.#ttlMs])) === 1;
      }
      if (!this.#leader) {
        const term = Number(await runScript(this.#redis, 'lease-acquire', [this.#keys.leader, this.#keys.term], [this.#instanceId, this.#ttlMs, this.#highestSeen + 1]));
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

  /**
   * Reports how many PostgreSQL nodes this instance reached (kept for
   * `staleAfterMs`), and returns whether another live instance reaches at
   * least one. Never throws (false when Redis does not answer).
   */
  async reportReach(reachable: number, staleAfterMs: number, nowMs = Date.now()): Promise<boolean> {
    try {
      await this.#redis.hset(this.#keys.monitors, this.#instanceId, JSON.stringify({ reachable, at: nowMs }));
      const all = await this.#redis.hgetall(this.#keys.monitors);
      let others = false;
      const gone: string[] = [];
      for (const [id, raw] of Object.entries(all)) {
        if (id === this.#instanceId) continue;
        let peer: { reachable?: unknown; at?: unknown } = {};
        try {
          peer = JSON.parse(raw) as typeof peer;
        } catch {
          // Not ours: ignored.
        }
        const at = typeof peer.at === 'number' ? peer.at : 0;
        if (nowMs - at > 10 * staleAfterMs) gone.push(id);
        else if (nowMs - at <= staleAfterMs && typeof peer.reachable === 'number' && peer.reachable > 0) others = true;
      }
      if (gone.length > 0) await this.#redis.hdel(this.#keys.monitors, ...gone);
      return others;
    } catch {
      return false;
    }
  }

  /** Gives the lease up so a standby takes over at once. Never throws. */
  async release(): Promise<void> {
    if (!this.#leader) return;
    this.#leader = false;
    this.#term = 0;
    await runScript(this.#redis, 'owner-release', [this.#keys.leader], [this.#instanceId]).catch(() => {});
  }
}
