import { type BusEventOf, type BusEventPayload, type BusEventType, type BusKeys, createEvent, encodeEvent } from '@pgreplica/protocol';
import type { Cluster, Redis } from 'ioredis';
import { runScript } from './scripts.js';

/** Result of one publish attempt. */
export type PublishOutcome = 'published' | 'not-leader';

/** Options of {@link BusPublisher}. */
export interface BusPublisherOptions {
  redis: Redis | Cluster;
  keys: BusKeys;
  cluster: string;
  /** This instance's name: the value of the leader key while it holds the lease. */
  instanceId: string;
  /** HMAC key; events are unsigned when absent. */
  key: string | undefined;
  /** Approximate cap of the stream (`XADD MAXLEN ~`). */
  streamMaxLen: number;
  /** Publish only while holding the lease (the monitor); others publish under the current term. @default true */
  fenced?: boolean;
}

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

  constructor(options: BusPublisherOptions) {
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
    const keys = this.#keys;
    const term = this.#fenced ? this.#term : Number((await this.#redis.get(keys.term)) ?? 0);
    const seq = Number(await runScript(this.#redis, 'next-seq', [keys.seq(term)], []));
    const event = createEvent(type, payload, { cluster: this.#cluster, term, seq, epoch, key: this.#key });
    const encoded = encodeEvent(event);
    const published = this.#fenced
      ? await runScript(this.#redis, 'fenced-publish', [keys.leader, keys.stream, keys.topology], [this.#instanceId, keys.events, encoded, this.#streamMaxLen, type === 'snapshot' ? '1' : '0'])
      : await runScript(this.#redis, 'unfenced-publish', [keys.stream], [keys.events, encoded, this.#streamMaxLen]);
    return { outcome: published === 1 ? 'published' : 'not-leader', event };
  }
}
