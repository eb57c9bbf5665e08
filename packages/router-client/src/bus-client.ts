import { EventEmitter } from 'node:events';
import { type BusEvent, busKeys, type BusKeys, type EventRejection, parseEvent, redisRetryDelayMs } from '@pgreplica/protocol';
import { Cluster, Redis, type RedisOptions } from 'ioredis';

/** How the router reaches Redis: a URL, options, or a client the app owns. */
export type RedisSource = string | RedisOptions | Redis | Cluster;

/** Events of {@link BusClient}. */
export interface BusClientEventMap {
  /** A verified event from the channel or a reloaded snapshot. */
  event: [event: BusEvent, via: 'channel' | 'reload'];
  /** A message that failed verification; it was dropped. */
  rejected: [rejection: EventRejection, detail: string];
  /** The subscription (re)connected: the caller should reload the snapshot. */
  connected: [];
  error: [err: Error];
}

/**
 * Subscribes to a cluster's bus and loads its snapshot. Reconnects forever
 * with capped, jittered back-off; after every (re)subscription it reports
 * `connected` so the router reloads the snapshot (pub/sub is at-most-once).
 */
export class BusClient extends EventEmitter<BusClientEventMap> {
  readonly keys: BusKeys;
  readonly #cluster: string;
  readonly #key: string | undefined;
  readonly #subscriber: Redis | Cluster;
  readonly #command: Redis | Cluster;
  readonly #ownsCommand: boolean;
  #closed = false;

  constructor(source: RedisSource, cluster: string, key: string | undefined) {
    super();
    this.keys = busKeys(cluster);
    this.#cluster = cluster;
    this.#key = key;
    const base: RedisOptions = { retryStrategy: (times: number) => redisRetryDelayMs(times), maxRetriesPerRequest: null, lazyConnect: true, connectionName: `pgreplica-router:${cluster}` };
    if (source instanceof Redis || source instanceof Cluster) {
      this.#command = source;
      this.#ownsCommand = false;
      this.#subscriber = source instanceof Cluster ? source.duplicate() : source.duplicate();
    } else {
      const make = () => (typeof source === 'string' ? new Redis(source, base) : new Redis({ ...base, ...source }));
      this.#command = make();
      this.#ownsCommand = true;
      this.#subscriber = make();
    }
    for (const conn of [this.#subscriber, this.#command]) {
      conn.on('error', (err: Error) => {
        if (this.listenerCount('error') > 0) this.emit('error', err);
      });
    }
    this.#subscriber.on('message', (_channel: string, message: string) => this.#handle(message, 'channel'));
    this.#subscriber.on('ready', () => {
      if (!this.#closed) this.emit('connected');
    });
  }

  #handle(message: string, via: 'channel' | 'reload'): void {
    const parsed = parseEvent(message, { cluster: this.#cluster, key: this.#key });
    if (parsed.ok) this.emit('event', parsed.event, via);
    else this.emit('rejected', parsed.rejection, parsed.detail);
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

  /** Loads the latest snapshot (`…:topology`); false when Redis does not answer. */
  async reload(): Promise<boolean> {
    try {
      const raw = await withTimeout(this.#command.get(this.keys.topology), 2_000);
      if (raw) this.#handle(raw, 'reload');
      return raw !== null;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#subscriber.disconnect();
    if (this.#ownsCommand) this.#command.disconnect();
  }
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
