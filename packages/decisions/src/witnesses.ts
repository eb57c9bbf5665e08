import type { NodeSample } from '@pgreplica/probe';

/** A replica as a witness of the primary's liveness: whether it answered, and what it said. */
export interface WitnessInput {
  nodeId: string;
  /** Whether the observer reached it this round. */
  reachable: boolean;
  /** Its latest sample (null when unreachable). */
  sample: NodeSample | null;
}

/** What one witness says about the primary, kept in the decision's inputs for audit. */
export interface WitnessObservation {
  nodeId: string;
  reachable: boolean;
  inRecovery: boolean | null;
  receiveLsn: string | null;
  replayLsn: string | null;
  /** `pg_stat_wal_receiver.status`, null when no receiver runs. */
  receiver: string | null;
  /** Milliseconds since the receiver last heard from its sender. */
  lastMessageAgeMs: number | null;
  /** How recent its last message must be to count: `witnessFreshMs`, or more where its `wal_receiver_timeout` allows longer silence. */
  freshWithinMs: number;
  /** Whether it streams from the primary (not cascading from another node) and heard from it within `witnessFreshMs`. */
  streamingFromPrimary: boolean;
}

/** How to read witnesses. */
export interface WitnessRules {
  /**
   * `host:port` of the other configured nodes: a replica whose sender is one
   * of them cascades and witnesses nothing about the primary. Not a match on
   * the primary's address: replicas may reach it by another name or through
   * a proxy than the observer does.
   */
  otherNodeAddresses: ReadonlySet<string>;
  /** A receiver that heard from its sender this recently counts as streaming. */
  witnessFreshMs: number;
  /**
   * Added to half a replica's `wal_receiver_timeout` (the longest a receiver
   * stays silent on an idle primary before it pings): the observer's own
   * sampling delay, e.g. its probe interval.
   */
  silenceMarginMs: number;
  nowMs: number;
}

/**
 * How recent a witness's last message must be to prove the primary alive.
 * On an idle primary a healthy receiver hears nothing until it pings, after
 * half its `wal_receiver_timeout`: a shorter bound would take an idle,
 * healthy primary cut off from the observers for dead. With the timeout
 * disabled (0) or unknown, only `witnessFreshMs` is left.
 */
export function witnessFreshWithinMs(walReceiverTimeoutMs: number | null, rules: Pick<WitnessRules, 'witnessFreshMs' | 'silenceMarginMs'>): number {
  if (walReceiverTimeoutMs === null || walReceiverTimeoutMs <= 0) return rules.witnessFreshMs;
  return Math.max(rules.witnessFreshMs, walReceiverTimeoutMs / 2 + rules.silenceMarginMs);
}

/**
 * Reads each replica's WAL receiver as evidence about the primary: a
 * reachable replica whose receiver streams from the primary and heard from
 * it within `witnessFreshMs` proves the primary alive. The one witness rule
 * the monitor (trigger) and the worker (re-check at run time) share. Pure.
 */
export function observeWitnesses(witnesses: readonly WitnessInput[], rules: WitnessRules): WitnessObservation[] {
  return witnesses.map((w) => {
    const s = w.reachable ? w.sample : null;
    const receiver = s?.walReceiver ?? null;
    const ageMs = receiver?.lastMsgReceiptAt ? rules.nowMs - receiver.lastMsgReceiptAt.getTime() : null;
    const cascading = receiver !== null && rules.otherNodeAddresses.has(`${receiver.senderHost}:${receiver.senderPort}`);
    const freshWithinMs = witnessFreshWithinMs(s?.walReceiverTimeoutMs ?? null, rules);
    return {
      nodeId: w.nodeId,
      reachable: s !== null,
      inRecovery: s?.inRecovery ?? null,
      receiveLsn: s?.receiveLsn ?? null,
      replayLsn: s?.replayLsn ?? null,
      receiver: receiver?.status ?? null,
      lastMessageAgeMs: ageMs,
      freshWithinMs,
      streamingFromPrimary: receiver?.status === 'streaming' && !cascading && ageMs !== null && ageMs <= freshWithinMs,
    };
  });
}

/** The ids of the witnesses that prove the primary alive. */
export function livingWitnesses(observations: readonly WitnessObservation[]): string[] {
  return observations.filter((o) => o.streamingFromPrimary).map((o) => o.nodeId);
}
