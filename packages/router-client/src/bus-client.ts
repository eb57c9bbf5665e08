import { EventEmitter } from 'node:events';
import { redisOptions } from '@pgreplica/bus';
import { type BusEvent, busKeys, type BusKeys, type EventPosition, type EventRejection, isNewerPosition, parseEvent, redisRetryDelayMs } from '@pgreplica/protocol';
import { Cluster, Redis, type RedisOptions } from 'ioredis';

/** How the router reaches Redis: a URL, options, or a client the app owns. */
export type RedisSource = string | RedisOptions | Redis | Cluster;

/** Events of {@link BusClient}. */
export interface BusClientEventMap {
  /** A verified event from the channel, a reloaded snapshot, or the stream (catching up after a gap). */
  event: [event: BusEvent, via: 'channel' | 'reload' | 'stream'];
  /** A message that failed verification or was published outside the time window; it was dropped. */
  rejected: [rejection: EventRejection | 'expired', detail: string];
  /** The subscription (re)connected: the caller should reload the snapshot. */
  connected: [];
  error: [err: Error];
}

/** How many recent events a catch-up reads from the stream at most. */
export const CATCH_UP_EVENTS = 1_000;
/** A catch-up reads the stream backwards this many events at a time, and stops once it reaches back far enough. */
const CATCH_UP_PAGE = 50;
/** Bound of one Redis read; the connection fails fast while Redis is away. */
const READ_TIMEOUT_MS = 2_000;

/**
 * The time window a live event must fall in: published at most `maxAgeMs`
 * ago and at most `maxSkewMs` in the future (by this host's clock).
 */
export interface EventWindow {
  maxAgeMs: () => number;
  maxSkewMs: number;
}

/**
 * Subscribes to a cluster's bus, loads its snapshot and catches up from its
 * stream. The subscription reconnects forever with capped, jittered
 * back-off and reports `connected` after every (re)subscription (pub/sub is
 * at-most-once: the caller reloads). Reads go over a second connection that
 * fails fast while Redis is away (nothing piles up in an offline queue), and
 * concurrent reloads share one read.
 */
export class BusClient extends EventEmitter<BusClientEventMap> {
  readonly keys: BusKeys;
  readonly #cluster: string;
  readonly #key: string | undefined;
  readonly #subscriber: Redis | Cluster;
  readonly #command: Redis | Cluster;
  readonly #ownsCommand: boolean;
  #closed = false;
  #reloading: Promise<'loaded' | 'empty' | 'failed'> | undefined;
  #catchingUp: Promise<boolean> | undefined;
  readonly #window: EventWindow | undefined;

  /** @param window when given, live events (channel, reload) and caught-up snapshots outside it are dropped as `expired`. */
  constructor(source: RedisSource, cluster: string, key: string | undefined, window?: EventWindow) {
    super();
    this.#window = window;
    this.keys = busKeys(cluster);
    this.#cluster = cluster;
    this.#key = key;
    const name = `pgreplica-router:${cluster}`;
    if (source instanceof Redis || source instanceof Cluster) {
      this.#command = source;
      this.#ownsCommand = false;
      const { maxRetriesPerRequest, enableOfflineQueue } = redisOptions('subscriber', name);
      this.#subscriber = source instanceof Cluster ? source.duplicate(undefined, { redisOptions: { maxRetriesPerRequest } }) : source.duplicate({ maxRetriesPerRequest, enableOfflineQueue });
    } else {
      const make = (role: 'subscriber' | 'command') => {
        const options = { ...redisOptions(role, name), lazyConnect: true };
        return typeof source === 'string' ? new Redis(source, options) : new Redis({ ...options, ...source });
      };
      this.#command = make('command');
      this.#ownsCommand = true;
      this.#subscriber = make('subscriber');
    }
    for (const conn of [this.#subscriber, this.#command]) {
      conn.on('error', (err: Error) => {
        if (this.listenerCount('error') > 0) this.emit('error', err);
      });
    }
    this.#subscriber.on('message', (_channel: string, message: string) => this.#handle(message, 'channel'));
    // After a reconnect, 'connected' (the caller reloads) only once the subscription
    // is in place again: a snapshot published between a reload and the
    // resubscription would otherwise be missed until the next one.
    this.#subscriber.on('ready', () => void this.#resubscribed());
  }

  #parse(message: string): BusEvent | null {
    const parsed = parseEvent(message, { cluster: this.#cluster, key: this.#key });
    if (parsed.ok) return parsed.event;
    this.emit('rejected', parsed.rejection, parsed.detail);
    return null;
  }

  /** Whether `event` was published inside the window; emits `rejected` (`expired`) when not. */
  #inWindow(event: BusEvent): boolean {
    if (!this.#window) return true;
    const ageMs = Date.now() - Date.parse(event.at);
    const { maxSkewMs } = this.#window;
    const maxAgeMs = this.#window.maxAgeMs() + maxSkewMs;
    if (ageMs <= maxAgeMs && ageMs >= -maxSkewMs) return true;
    this.emit('rejected', 'expired', `${event.type} t${event.term}/s${event.seq} published at ${event.at}: ${ageMs >= 0 ? `${ageMs} ms ago (at most ${maxAgeMs})` : `${-ageMs} ms in the future (at most ${maxSkewMs})`}`);
    return false;
  }

  #handle(message: string, via: 'channel' | 'reload'): void {
    const event = this.#parse(message);
    if (event && this.#inWindow(event)) this.emit('event', event, via);
  }

  async #resubscribed(): Promise<void> {
    try {
      await this.#subscriber.subscribe(this.keys.events);
    } catch {
      return; // the next 'ready' tries again
    }
    if (!this.#closed) this.emit('connected');
  }

  /**
   * {@link reload}, retried with capped, jittered back-off while it fails
   * (the command connection may come back after the subscription), at most
   * `attempts` times. Resolves with whether a read succeeded.
   */
  async reloadUntilRead(attempts = 8): Promise<boolean> {
    for (let attempt = 0; attempt < attempts && !this.#closed; attempt++) {
      if ((await this.#read()) !== 'failed') return true;
      await new Promise((resolve) => setTimeout(resolve, redisRetryDelayMs(attempt)).unref?.());
    }
    return false;
  }

  /** Connects and subscribes; does not wait for Redis to be up. */
  start(): void {
    const connect = (conn: Redis | Cluster) => {
      if (conn.status === 'wait') conn.connect().catch(() => {});
    };
    connect(this.#command);
    connect(this.#subscriber);
    this.#subscriber.subscribe(this.keys.events).catch(() => {});
  }

  /** Loads the latest snapshot (`…:topology`); false when Redis does not answer or has none. Concurrent calls share one read. */
  async reload(): Promise<boolean> {
    return (await this.#read()) === 'loaded';
  }

  #read(): Promise<'loaded' | 'empty' | 'failed'> {
    this.#reloading ??= (async () => {
      try {
        const raw = await withTimeout(this.#command.get(this.keys.topology), READ_TIMEOUT_MS);
        if (raw) this.#handle(raw, 'reload');
        return raw === null ? 'empty' : 'loaded';
      } catch {
        return 'failed';
      } finally {
        this.#reloading = undefined;
      }
    })();
    return this.#reloading;
  }

  /**
   * Catches up after a gap: reads the stream backwards from its newest event,
   * a page at a time, until it reaches back to `position`, holds a snapshot,
   * or has read {@link CATCH_UP_EVENTS}; then emits, oldest first, those
   * after `position` — from the newest snapshot on when the gap reaches
   * further back than that, so nothing is applied out of order. False when
   * Redis does not answer. Concurrent calls share one read.
   */
  catchUp(position: () => EventPosition | null): Promise<boolean> {
    this.#catchingUp ??= (async () => {
      try {
        const events = await this.#readBack(position());
        for (const event of events.slice(catchUpStart(events, position()))) {
          const now = position();
          if (now === null || isNewerPosition(event, now) || event.type === 'snapshot') this.emit('event', event, 'stream');
        }
        return true;
      } catch {
        return false;
      } finally {
        this.#catchingUp = undefined;
      }
    })();
    return this.#catchingUp;
  }

  /** The stream's newest events back to `from` (or a snapshot), oldest first. */
  async #readBack(from: EventPosition | null): Promise<BusEvent[]> {
    const newestFirst: BusEvent[] = [];
    let end = '+';
    for (let read = 0; read < CATCH_UP_EVENTS; read += CATCH_UP_PAGE) {
      const entries = (await withTimeout(this.#command.xrevrange(this.keys.stream, end, '-', 'COUNT', CATCH_UP_PAGE), READ_TIMEOUT_MS)) as [string, string[]][];
      let done = entries.length < CATCH_UP_PAGE;
      for (const [, fields] of entries) {
        const raw = fields[fields.indexOf('event') + 1];
        const event = raw === undefined ? null : this.#parse(raw);
        if (!event) continue;
        // Older events fill a gap after our position (which orders them); a snapshot replaces the view, so it must be recent.
        if (event.type !== 'snapshot' || this.#inWindow(event)) newestFirst.push(event);
        if (event.type === 'snapshot' || (from !== null && !isNewerPosition(event, from))) done = true;
      }
      const last = entries.at(-1);
      if (done || !last) break;
      end = `(${last[0]}`;
    }
    return newestFirst.reverse();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#subscriber.disconnect();
    if (this.#ownsCommand) this.#command.disconnect();
  }
}

/**
 * Where to start applying a batch of stream events (oldest first): right
 * after `from` when the batch reaches back to it, else at the batch's newest
 * snapshot (the gap is older than the stream keeps), else at the start.
 */
export function catchUpStart(events: readonly BusEvent[], from: EventPosition | null): number {
  const oldest = events[0];
  if (from === null || oldest === undefined) return 0;
  const reachesBack = !isNewerPosition(oldest, from) || (oldest.term === from.term && oldest.seq === from.seq + 1);
  if (reachesBack) return 0;
  for (let i = events.length - 1; i >= 0; i--) if (events[i]!.type === 'snapshot') return i;
  return 0;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    timer.unref?.();
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
