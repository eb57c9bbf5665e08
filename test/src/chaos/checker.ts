import { compareLsn } from '@pgreplica/protocol';
import type { HistoryEntry, WriteEntry } from './history.js';

/** A row of the `pgreplica.epoch` table of the final primary: who became primary when. */
export interface EpochRecord {
  epoch: number;
  primaryId: string;
  at: number;
}

/** What the orchestrator read from the servers after the faults ended and the cluster settled. */
export interface FinalState {
  /** Nodes that accept writes (reachable, not in recovery, not fenced). */
  writable: string[];
  /** Every node, and whether it streams from the single writable node. */
  streaming: Record<string, boolean>;
  /** Ids in `chaos_ledger` on the final primary (empty without one). */
  ledgerIds: ReadonlySet<number>;
  /** The epoch history on the final primary, oldest first. */
  epochs: EpochRecord[];
  /** The final primary's timeline and the one the cluster started on. */
  timeline: number;
  initialTimeline: number;
  initialEpoch: number;
  /** Bus events counted by a recorder: null when Redis lost them (restarted empty, cut). */
  bus: { primaryChanged: number; promotions: number } | null;
  /** The workers' `failover.durability`. */
  durability: 'async' | 'synchronous';
  /** Where the cluster said it discarded a node's writes, and when. */
  lossReports: LossReport[];
  /** Failovers the bus announced (`failover.finished`): the node replaced, and when. Switchovers are not among them. */
  failovers: { from: string; at: number }[];
}

/**
 * A report that writes a node acknowledged were discarded, and from where:
 * a failover's `lostBytes` > 0 (its old primary's WAL past the new timeline's
 * start, `newPrimaryStartLsn`), or a rejoin's `lostTail` (WAL past the fork
 * that pg_rewind threw away, counted and kept aside by the hook).
 */
export interface LossReport {
  node: string;
  at: number;
  /** Where the node's history and the cluster's parted: what it wrote past this is what was reported lost. */
  forkLsn: string;
  what: string;
}

/** A broken guarantee. */
export interface Violation {
  rule: 'acknowledged-write-lost' | 'write-on-deposed-node' | 'token-read-missed' | 'not-one-primary' | 'not-streaming' | 'promotions-vs-epochs' | 'writes-not-back';
  detail: string;
  /** When it happened (ms since the epoch), for the history excerpt. */
  at: number;
}

/**
 * Checks a seed's history and final state against the guarantees of issue 8.
 * Pure: the same inputs give the same verdict.
 */
export function checkHistory(history: readonly HistoryEntry[], final: FinalState, times: { healedAt: number; endAt: number }): Violation[] {
  const { healedAt, endAt } = times;
  const violations: Violation[] = [];
  const acks = history.filter((e): e is WriteEntry => e.type === 'write');
  if (!acks.some((a) => a.sentAt >= healedAt)) violations.push({ rule: 'writes-not-back', detail: 'no write was acknowledged after the last fault ended', at: endAt });
  const primaryId = final.writable.length === 1 ? final.writable[0]! : null;
  if (primaryId === null) {
    violations.push({ rule: 'not-one-primary', detail: `nodes taking writes at the end: [${final.writable.join(', ')}]`, at: endAt });
  } else {
    for (const a of lostWrites(acks, final)) {
      // Asynchronous replication may lose the tail a primary acknowledged and no replica
      // received before a failover replaced it (its documented trade-off), never silently.
      if (final.durability === 'async' && reportOf(a, final)) continue;
      violations.push({
        rule: 'acknowledged-write-lost',
        detail: `write #${a.id} acknowledged by ${a.node} (epoch ${a.epoch}) is not on the final primary ${primaryId}${final.durability === 'async' ? ', and no failover away from it reported a loss that holds it' : ''}`,
        at: a.at,
      });
    }
    for (const [node, streams] of Object.entries(final.streaming)) {
      if (node !== primaryId && !streams) violations.push({ rule: 'not-streaming', detail: `${node} does not stream from the final primary ${primaryId}`, at: endAt });
    }
    const epochDelta = (final.epochs.at(-1)?.epoch ?? final.initialEpoch) - final.initialEpoch;
    const timelineDelta = final.timeline - final.initialTimeline;
    if (timelineDelta !== epochDelta) violations.push({ rule: 'promotions-vs-epochs', detail: `the final primary's timeline moved ${timelineDelta} times, the epoch ${epochDelta} times`, at: endAt });
    if (final.bus && (final.bus.primaryChanged !== epochDelta || final.bus.promotions !== epochDelta)) {
      violations.push({ rule: 'promotions-vs-epochs', detail: `bus: ${final.bus.promotions} promotions finished, ${final.bus.primaryChanged} primary.changed; epoch moved ${epochDelta} times`, at: endAt });
    }
  }
  // A node took a write sent after an epoch moved past it: it had been the primary of an
  // earlier epoch, and a later epoch naming another node was recorded before the write was
  // sent (the record is written on the new primary before it is announced). A write sent
  // before the new primary's record and held by the router until then is not one.
  for (const a of acks) {
    const current = [...final.epochs].reverse().find((e) => e.at <= a.sentAt);
    if (!current || current.primaryId === a.node) continue;
    if (!final.epochs.some((e) => e.epoch < current.epoch && e.primaryId === a.node)) continue;
    // A node promoted again for the next epoch takes writes between pg_promote and its epoch
    // record (a router asking the nodes finds it writable): they are on the new primary's
    // history, not a deposed node's (and if they were lost, acknowledged-write-lost says so).
    const next = final.epochs.find((e) => e.epoch === current.epoch + 1);
    if (next?.primaryId === a.node && a.sentAt < next.at && final.ledgerIds.has(a.id)) continue;
    violations.push({ rule: 'write-on-deposed-node', detail: `write #${a.id} sent at ${new Date(a.sentAt).toISOString()} acknowledged by ${a.node} (its epoch ${a.epoch}), but ${current.primaryId} was primary since epoch ${current.epoch} (${new Date(current.at).toISOString()})`, at: a.at });
  }
  for (const e of history) {
    if (e.type === 'read' && !e.found) violations.push({ rule: 'token-read-missed', detail: `${e.router}'s read of #${e.id} with its write's token on ${e.node} did not see it`, at: e.at });
  }
  return violations;
}

/** Acknowledged writes missing from the final primary (none without a single final primary). */
export function lostWrites(acks: readonly HistoryEntry[], final: FinalState): WriteEntry[] {
  if (final.writable.length !== 1) return [];
  return acks.filter((a): a is WriteEntry => a.type === 'write' && !final.ledgerIds.has(a.id));
}

/**
 * The report that excuses a lost write under asynchronous durability, if
 * any. Only the loss that mode trades away passes: the node was the recorded
 * primary when it acknowledged the write (a write taken by a deposed node is
 * never excused), a failover (not a switchover, which must lose nothing)
 * replaced it afterwards, and a loss was reported on it after the write,
 * before it was promoted again, from a fork below the write's commit
 * position (the token's LSN): the write is inside the reported range.
 */
export function reportOf(write: WriteEntry, final: FinalState): LossReport | undefined {
  const lsn = TOKEN.exec(write.token)?.[1];
  if (!lsn || lsn.toUpperCase() === PRIMARY_ONLY_LSN) return undefined;
  const recorded = [...final.epochs].reverse().find((e) => e.at <= write.at);
  if (recorded?.primaryId !== write.node) return undefined;
  if (!final.failovers.some((f) => f.from === write.node && f.at > write.at)) return undefined;
  return final.lossReports.find(
    (r) =>
      r.node === write.node &&
      r.at > write.at &&
      compareLsn(lsn, r.forkLsn) > 0 &&
      !final.epochs.some((e) => e.primaryId === write.node && e.at > write.at && e.at < r.at),
  );
}

/** A read-your-writes token, `v1.<epoch>.<lsn>`: its commit LSN. */
const TOKEN = /^v1\.\d+\.([0-9A-Fa-f]+\/[0-9A-Fa-f]+)$/;
/** The LSN of a token whose commit position the router could not read: no range can be said to hold it. */
const PRIMARY_ONLY_LSN = 'FFFFFFFF/FFFFFFFF';
