/**
 * Redis key names of one cluster. Every key carries the cluster name in a hash
 * tag (`{…}`), so all of them land in one slot and the bus works on Redis Cluster.
 */

/**
 * Reconnect delay for every Redis connection of pgreplica (ioredis
 * `retryStrategy`): 50 ms doubling to a 2 s cap, with jitter so clients that
 * lost Redis together do not reconnect together.
 */
export function redisRetryDelayMs(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(2_000, 50 * 2 ** Math.min(attempt, 6));
  return Math.round(base / 2 + random() * (base / 2));
}

/** Characters allowed in a cluster name: they end up inside Redis keys and metric labels. */
export const CLUSTER_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/**
 * The Redis keys and channel of one cluster's bus.
 * @see PrimaryRecord for the value of `primary`.
 */
export interface BusKeys {
  /** Pub/sub channel carrying every event, for low latency. */
  readonly events: string;
  /** Capped stream holding the same events, for audit and replay. */
  readonly stream: string;
  /** String holding the latest full topology snapshot. */
  readonly topology: string;
  /** String with a TTL naming the monitor instance that may publish (the lease). */
  readonly leader: string;
  /** Counter bumped on each leadership change; every event carries it. */
  readonly term: string;
  /** Counter bumped on each change of primary; the snapshot carries it. */
  readonly epoch: string;
  /** JSON {@link PrimaryRecord}: which node is primary in the current epoch. Changed only with the epoch. */
  readonly primary: string;
  /** Flag that, while set, stops all automatic remediation. */
  readonly paused: string;
  /** Counter allocating `seq` within a term: every publisher of a term shares it. */
  seq(term: number): string;
  /** Time (ms) of the last automatic failover, for the anti-flapping window. */
  readonly lastFailover: string;
  /** Lock held by the worker while it changes the primary (with a fencing token). */
  readonly changeLock: string;
  /** Counter issuing fencing tokens for {@link BusKeys.changeLock}. */
  readonly fence: string;
  /** Progress of the promotion of one epoch, so a restarted worker resumes instead of promoting twice. */
  promotion(epoch: number): string;
  /** The synchronous standbys of an epoch's primary and the position the set last changed at (durability: synchronous). */
  syncStandbys(epoch: number): string;
  /** Hash: slot name → when the worker first saw it inactive (ms), for the slot grace period. */
  readonly slotsInactiveSince: string;
  /** Prefix for BullMQ queues, hash-tagged like the rest. */
  readonly queuePrefix: string;
  /** Hash: monitor instance id → how many nodes it reached and when (so one that reaches none lets another lead). */
  readonly monitors: string;
  /** Claim of a signed job's nonce (the id of the job that used it), so a copied job cannot run again. */
  jobNonce(nonce: string): string;
}

/**
 * Returns the key names for `cluster`.
 * @throws RangeError when the name would not be safe inside a key.
 */
export function busKeys(cluster: string): BusKeys {
  assertClusterName(cluster);
  const base = `pgreplica:{${cluster}}`;
  return Object.freeze({
    events: `${base}:events`,
    stream: `${base}:stream`,
    topology: `${base}:topology`,
    leader: `${base}:leader`,
    term: `${base}:term`,
    epoch: `${base}:epoch`,
    primary: `${base}:primary`,
    seq: (term: number) => `${base}:seq:${term}`,
    lastFailover: `${base}:last-failover`,
    changeLock: `${base}:lock:change`,
    fence: `${base}:fence`,
    promotion: (epoch: number) => `${base}:promotion:e${epoch}`,
    slotsInactiveSince: `${base}:slots:inactive-since`,
    syncStandbys: (epoch: number) => `${base}:sync:e${epoch}`,
    jobNonce: (nonce: string) => `${base}:job-nonce:${nonce}`,
    monitors: `${base}:monitors`,
    paused: `${base}:paused`,
    queuePrefix: base,
  });
}

/** Throws a RangeError naming the fix when `cluster` is not a valid cluster name. */
export function assertClusterName(cluster: string): void {
  if (!CLUSTER_NAME_PATTERN.test(cluster)) {
    throw new RangeError(
      `cluster name ${JSON.stringify(cluster)} is invalid: use 1-63 letters, digits, "_", "." or "-", starting with a letter or digit`,
    );
  }
}
