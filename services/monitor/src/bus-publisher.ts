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

/** Result of one publish attempt. */
export type PublishOutcome = 'published' | 'not-leader';

/**
 * Numbers and publishes bus events: `(term, seq)` with seq growing by one per
 * event in a term, the current epoch, HMAC signature when a key is set.
 */
export class BusPublisher {
  readonly #redis: Redis | Cluster;
  readonly #keys: BusKeys;
  readonly #cluster: string;
  readonly #instanceId: string;
  readonly #key: string | undefined;
  readonly #streamMaxLen: number;
  #term = 0;
  #seq = 0;

  constructor(options: { redis: Redis | Cluster; keys: BusKeys; cluster: string; instanceId: string; key: string | undefined; streamMaxLen: number }) {
    this.#redis = options.redis;
    this.#keys = options.keys;
    this.#cluster = options.cluster;
    this.#instanceId = options.instanceId;
    this.#key = options.key;
    this.#streamMaxLen = options.streamMaxLen;
    this.#redis.defineCommand?.('pgreplicaFencedPublish', { numberOfKeys: 3, lua: FENCED_PUBLISH });
  }

  /** Starts a new term (after winning the lease): seq restarts at 0. */
  setTerm(term: number): void {
    if (term !== this.#term) {
      this.#term = term;
      this.#seq = 0;
    }
  }

  get term(): number {
    return this.#term;
  }

  /** Publishes one event. Throws when Redis fails (the caller counts it; the next snapshot repairs). */
  async publish<T extends BusEventType>(type: T, payload: BusEventPayload<T>, epoch: number): Promise<{ outcome: PublishOutcome; event: BusEventOf<T> }> {
    const event = createEvent(type, payload, {
      cluster: this.#cluster,
      term: this.#term,
      seq: this.#seq + 1,
      epoch,
      key: this.#key,
    });
    const run = (this.#redis as unknown as { pgreplicaFencedPublish: (...args: (string | number)[]) => Promise<number> }).pgreplicaFencedPublish;
    const published = await run.call(
      this.#redis,
      this.#keys.leader,
      this.#keys.stream,
      this.#keys.topology,
      this.#instanceId,
      this.#keys.events,
      encodeEvent(event),
      this.#streamMaxLen,
      type === 'snapshot' ? '1' : '0',
    );
    if (published !== 1) return { outcome: 'not-leader', event };
    this.#seq += 1;
    return { outcome: 'published', event };
  }
}
