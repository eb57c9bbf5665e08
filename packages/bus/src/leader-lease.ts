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

/** How long a new lease waits for Redis replicas to acknowledge it (`WAIT`) with {@link LeaderLease} `ackReplicas`. */
export const LEASE_ACK_TIMEOUT_MS = 1_000;

/**
 * How far above the highest term a monitor knows the term in Redis may be
 * before it is taken for forged: terms move by one per lease taken, so even
 * years of leader changes stay far below this.
 */
export const MAX_TERM_JUMP = 1_000_000;

/**
 * A Redis lease electing the one monitor that publishes and enqueues. The
 * holder renews it every tick; when it stops (crash, partition), the key
 * expires after `ttlMs` and another instance takes it, bumping the term.
 * A tick that cannot reach Redis counts as losing the lease: better silent
 * than two publishers. A renewal also checks that Redis still holds the
 * holder's term and events (a failover to a Redis replica that was behind
 * loses them): if not, the holder takes a new term. With `ackReplicas`, a
 * new term counts only once that many of the master's connected Redis
 * replicas have it (`WAIT`), so a term lost with a failed Redis master was
 * never used.
 */
export class LeaderLease {
  readonly #redis: Redis | Cluster;
  readonly #keys: BusKeys;
  readonly #instanceId: string;
  readonly #ttlMs: number;
  readonly #ackReplicas: number;
  #leader = false;
  #term = 0;
  #highestSeen = 0;
  readonly #onForgedTerm: ((term: number) => void) | undefined;

  /**
   * @param ackReplicas Redis replicas that must acknowledge a new term before it is used (0: none).
   * @param onForgedTerm hears of a term no monitor wrote (not an integer, or more than {@link MAX_TERM_JUMP} above what this instance knows): ignored, or replaced in Redis when this instance takes the lease.
   */
  constructor(redis: Redis | Cluster, keys: BusKeys, instanceId: string, ttlMs: number, ackReplicas = 0, onForgedTerm?: (term: number) => void) {
    this.#onForgedTerm = onForgedTerm;
    this.#redis = redis;
    this.#keys = keys;
    this.#instanceId = instanceId;
    this.#ttlMs = ttlMs;
    this.#ackReplicas = ackReplicas;
  }

  get isLeader(): boolean {
    return this.#leader;
  }

  get term(): number {
    return this.#term;
  }

  /**
   * Notes a term seen on the bus or in the databases, so a term this instance
   * takes is always higher — unless it is more than {@link MAX_TERM_JUMP}
   * above every term seen so far: no monitor wrote that (someone with Redis
   * access but not the bus key did), and following it would carry the forged
   * value into every later term and the databases' floor. Reported instead.
   */
  observeTerm(term: number): void {
    if (term > this.#highestSeen + MAX_TERM_JUMP) {
      this.#onForgedTerm?.(term);
      return;
    }
    if (term > this.#highestSeen) this.#highestSeen = term;
  }

  /**
   * Renews or tries to acquire the lease. Never throws. With `mayLead` false
   * (this instance reaches no PostgreSQL node while another does), gives the
   * lease up, or does not try to take it. `lastSeq` is the seq of the last
   * event this instance published in its term (the renewal checks Redis
   * still has it). `changed` is also true when the term changed.
   */
  async tick(mayLead = true, lastSeq = 0): Promise<LeaseState> {
    const was = this.#leader;
    const wasTerm = this.#term;
    if (!mayLead) {
      await this.release();
      return { leader: false, term: 0, changed: was };
    }
    try {
      if (this.#leader) {
        const keys = [this.#keys.leader, this.#keys.term, this.#keys.seq(this.#term)];
        this.#leader = (await runScript(this.#redis, 'lease-renew', keys, [this.#instanceId, this.#ttlMs, this.#term, lastSeq])) === 1;
      }
      if (!this.#leader) {
        const reply = (await runScript(this.#redis, 'lease-acquire', [this.#keys.leader, this.#keys.term], [this.#instanceId, this.#ttlMs, this.#highestSeen + 1, MAX_TERM_JUMP])) as [number, number];
        const term = Number(reply[0]);
        if (Number(reply[1]) === 1) this.#onForgedTerm?.(Number.NaN);
        if (term > 0) {
          this.observeTerm(term);
          if (await this.#acknowledged()) {
            this.#leader = true;
            this.#term = term;
          } else {
            // Not on enough replicas: a Redis failover now could hand this term to another monitor. Try again next tick.
            await runScript(this.#redis, 'owner-release', [this.#keys.leader], [this.#instanceId]);
          }
        }
      }
    } catch {
      this.#leader = false;
    }
    if (!this.#leader) this.#term = 0;
    return { leader: this.#leader, term: this.#term, changed: was !== this.#leader || wasTerm !== this.#term };
  }

  /**
   * Whether `ackReplicas` Redis replicas — at most as many as the master has
   * connected — have the lease just taken (`WAIT`). A master with no replica
   * connected is not waited for: a failover could only promote a replica
   * already behind, and waiting would keep every monitor from leading (so no
   * automatic failover) for as long as Redis runs without one
   * (`min-replicas-to-write` covers that case). Both commands go with a key,
   * so a Cluster sends them to the key's node.
   */
  async #acknowledged(): Promise<boolean> {
    if (this.#ackReplicas === 0) return true;
    const info = await this.#redis.pipeline().pttl(this.#keys.leader).info('replication').exec();
    const [infoErr, text] = info?.[1] ?? [new Error('no reply to INFO'), ''];
    if (infoErr) throw infoErr;
    const connected = Number(/^connected_slaves:(\d+)/m.exec(String(text))?.[1] ?? 0);
    const needed = Math.min(this.#ackReplicas, connected);
    if (needed === 0) return true;
    const replies = await this.#redis.pipeline().pttl(this.#keys.leader).wait(needed, LEASE_ACK_TIMEOUT_MS).exec();
    const [err, acked] = replies?.[1] ?? [new Error('no reply to WAIT'), 0];
    if (err) throw err;
    return Number(acked) >= needed;
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
