import {
  type BusEventOf,
  type BusEventPayload,
  type BusEventType,
  type BusKeys,
  createEvent,
  encodeEvent,
} from '@pgreplica/protocol';
import type { Cluster, Redis } from 'ioredis';

/**
 * Publishes only while this instance holds the lease: checks the leader key,
 * then PUBLISH, XADD (capped) and, for snapshots, SET topology — atomically,
 * so a monitor that lost its lease cannot slip an event in after its successor.
 * KEYS: leader, stream, topology. ARGV: instance, channel, event, maxlen, isSnapshot.
 * Returns 1 when published, 0 when not the leader.
 */
const FENCED_PUBLISH = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'event', ARGV[3])
if ARGV[5] == '1' then redis.call('SET', KEYS[3], ARGV[3]) end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1`;

/** Publish without a lease (the worker, the CLI): KEYS: stream. ARGV: channel, event, maxlen. */
const UNFENCED_PUBLISH = `
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[2])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1`;

/** Allocate the next seq of a term. KEYS: seq counter. Expires a day after the term's last event. */
const NEXT_SEQ = `
local s = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], 86400000)
return s`;

/** Result of one publish attempt. */
export type PublishOutcome = 'published' | 'not-leader';

/**
 * Numbers and publishes bus events: `(term, seq)` with seq growing by one per
 * event in a term — from a Redis counter every publisher of the term shares
 * (the monitor leader, the worker, the CLI) — the current epoch, and an HMAC
 * signature when a key is set. The leader publishes fenced by its lease;
 * others (`fenced: false`) publish under the current term.
 */
export class BusPublisher {
  readonly #redis: Redis | Cluster;
  readonly #keys: BusKeys;
  readonly #cluster: string;
  readonly #instanceId: string;
  readonly #key: string | undefined;
  readonly #streamMaxLen: number;
  readonly #fenced: boolean;
  #term = 0;

  constructor(options: {
    redis: Redis | Cluster;
    keys: BusKeys;
    cluster: string;
    instanceId: string;
    key: string | undefined;
    streamMaxLen: number;
    /** @default true: publish only while holding the lease */
    fenced?: boolean;
  }) {
    this.#redis = options.redis;
    this.#keys = options.keys;
    this.#cluster = options.cluster;
    this.#instanceId = options.instanceId;
    this.#key = options.key;
    this.#streamMaxLen = options.streamMaxLen;
    this.#fenced = options.fenced ?? true;
  }

  /** Starts a new term (after winning the lease). */
  setTerm(term: number): void {
    this.#term = term;
  }

  /** Publishes one event. Throws when Redis fails (the caller counts it; the next snapshot repairs). */
  async publish<T extends BusEventType>(type: T, payload: BusEventPayload<T>, epoch: number): Promise<{ outcome: PublishOutcome; event: BusEventOf<T> }> {
    const term = this.#fenced ? this.#term : Number((await this.#redis.get(this.#keys.term)) ?? 0);
    const seq = Number(await this.#redis.eval(NEXT_SEQ, 1, this.#keys.seq(term)));
    const event = createEvent(type, payload, { cluster: this.#cluster, term, seq, epoch, key: this.#key });
    const encoded = encodeEvent(event);
    const published = this.#fenced
      ? await this.#redis.eval(
          FENCED_PUBLISH,
          3,
          this.#keys.leader,
          this.#keys.stream,
          this.#keys.topology,
          this.#instanceId,
          this.#keys.events,
          encoded,
          this.#streamMaxLen,
          type === 'snapshot' ? '1' : '0',
        )
      : await this.#redis.eval(UNFENCED_PUBLISH, 1, this.#keys.stream, this.#keys.events, encoded, this.#streamMaxLen);
    return { outcome: published === 1 ? 'published' : 'not-leader', event };
  }
}
