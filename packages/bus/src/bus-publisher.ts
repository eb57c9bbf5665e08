import { setTimeout as sleep } from 'node:timers/promises';
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
 * How many times a publish re-signs after another publisher took its seq.
 * Each conflict means some publisher's event went out, so this bounds only
 * starvation; from the third conflict on, a jittered pause of up to
 * {@link MAX_CONFLICT_BACKOFF_MS} lets the others' bursts pass.
 */
const MAX_SEQ_CONFLICTS = 100;
const MAX_CONFLICT_BACKOFF_MS = 20;

/**
 * Numbers and publishes bus events: `(term, seq)` with seq growing by one per
 * event in a term, shared by every publisher of the term (the monitor leader,
 * the worker, the CLI), the current epoch, and an HMAC signature when a key
 * is set. The seq is taken in the same Lua step that appends to the stream
 * and publishes, so events go out in seq order: the event is signed with the
 * seq expected, and re-signed when another publisher took it first. The
 * leader publishes fenced by its lease; others (`fenced: false`) under the
 * current term.
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
  #nextSeq = 1;
  /** The publish in progress: this publisher's own events go out one at a time, in call order. */
  #tail: Promise<unknown> = Promise.resolve();

  constructor(options: BusPublisherOptions) {
    this.#redis = options.redis;
    this.#keys = options.keys;
    this.#cluster = options.cluster;
    this.#instanceId = options.instanceId;
    this.#key = options.key;
    this.#streamMaxLen = options.streamMaxLen;
    this.#fenced = options.fenced ?? true;
  }

  /** Seq of the last event this publisher published in its term (0: none yet); the lease's renewal checks Redis still has it. */
  get lastSeq(): number {
    return this.#nextSeq - 1;
  }

  /** Starts a new term (after winning the lease). */
  setTerm(term: number): void {
    if (term !== this.#term) this.#nextSeq = 1;
    this.#term = term;
  }

  /**
   * Publishes one event. Throws when Redis fails (the caller counts it; the
   * next snapshot repairs). Concurrent calls are queued: they would only
   * take each other's seq (and the leader's expected seq would go wrong).
   */
  publish<T extends BusEventType>(type: T, payload: BusEventPayload<T>, epoch: number): Promise<{ outcome: PublishOutcome; event: BusEventOf<T> }> {
    const run = this.#tail.then(() => this.#publish(type, payload, epoch));
    this.#tail = run.catch(() => {});
    return run;
  }

  async #publish<T extends BusEventType>(type: T, payload: BusEventPayload<T>, epoch: number): Promise<{ outcome: PublishOutcome; event: BusEventOf<T> }> {
    const keys = this.#keys;
    let term = this.#fenced ? this.#term : Number((await this.#redis.get(keys.term)) ?? 0);
    let seq = this.#fenced ? this.#nextSeq : Number((await this.#redis.get(keys.seq(term))) ?? 0) + 1;
    for (let attempt = 0; ; attempt++) {
      const event = createEvent(type, payload, { cluster: this.#cluster, term, seq, epoch, key: this.#key });
      const reply = (await runScript(
        this.#redis,
        'publish-event',
        [keys.leader, keys.stream, keys.topology, keys.term, keys.seq(term)],
        [this.#fenced ? this.#instanceId : '', keys.events, encodeEvent(event), this.#streamMaxLen, type === 'snapshot' ? '1' : '0', term, seq],
      )) as [number, number, number?];
      if (reply[0] === 1) {
        if (this.#fenced) this.#nextSeq = seq + 1;
        return { outcome: 'published', event };
      }
      if (reply[0] === 0) return { outcome: 'not-leader', event };
      if (attempt >= MAX_SEQ_CONFLICTS) throw new Error(`could not publish ${type}: other publishers took the next seq of term ${term} ${attempt} times in a row`);
      if (!this.#fenced) term = Number(reply[2] ?? term);
      seq = Number(reply[1]);
      if (attempt >= 2) await sleep(Math.random() * Math.min(attempt, MAX_CONFLICT_BACKOFF_MS));
    }
  }
}
