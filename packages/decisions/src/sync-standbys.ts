import { compareLsn } from '@pgreplica/protocol';

/** The synchronous standbys of an epoch's primary, as recorded when they were last set. */
export interface SyncRecord {
  /** Node ids in `synchronous_standby_names = 'ANY 1 (…)'`; empty while none streams. */
  members: string[];
  /**
   * The primary's position when the set last shrank: a commit acknowledged
   * before then may be on a member that left, so a candidate must have received
   * at least this far.
   */
  floorLsn: string | null;
}

/**
 * The `synchronous_standby_names` value for a set of standbys (their
 * application names): `ANY 1 (…)`, or '' when there is none (writes must not
 * block on a standby that is gone). Pure.
 */
export function synchronousStandbyNames(applicationNames: readonly string[]): string {
  if (applicationNames.length === 0) return '';
  const quoted = [...applicationNames].sort().map((n) => `"${n.replaceAll('"', '""')}"`);
  return `ANY 1 (${quoted.join(', ')})`;
}

/** Which candidates a synchronous failover may promote, or why none. */
export type SyncCandidates = { ok: true; allowed: string[] } | { ok: false; reason: string };

/**
 * With `durability: synchronous`, only a recorded member may be promoted,
 * and only when it is sure to have every acknowledged commit: every member
 * reachable (so the most advanced can be picked), or the reachable ones past
 * what the unreachable ones were last seen to have received and past the
 * record's floor. Pure.
 */
export function syncCandidates(args: {
  record: SyncRecord | null;
  /** Received LSN of each reachable member now. */
  reachable: ReadonlyMap<string, string | null>;
  /** Last known received LSN of members that did not answer (from the monitor's last snapshot). */
  lastKnown: ReadonlyMap<string, string | null>;
}): SyncCandidates {
  const { record, reachable, lastKnown } = args;
  if (!record) return { ok: false, reason: 'sync-unknown: no record of the synchronous standbys of this epoch; promote by hand after checking' };
  if (record.members.length === 0) return { ok: false, reason: 'sync-none: no replica was synchronous (every one had left): an acknowledged commit may be on no replica' };
  const present = record.members.filter((m) => reachable.has(m));
  if (present.length === 0) return { ok: false, reason: `sync-unreachable: none of the synchronous standbys (${record.members.join(', ')}) answers` };
  const needed: string[] = [];
  if (record.floorLsn) needed.push(record.floorLsn);
  for (const member of record.members) {
    if (reachable.has(member)) continue;
    const known = lastKnown.get(member);
    if (!known) return { ok: false, reason: `sync-unreachable: ${member}, a synchronous standby, does not answer and its last position is unknown` };
    needed.push(known);
  }
  const allowed = present.filter((m) => {
    const lsn = reachable.get(m);
    return lsn !== null && lsn !== undefined && needed.every((n) => compareLsn(lsn, n) >= 0);
  });
  if (allowed.length === 0) return { ok: false, reason: `sync-behind: no reachable synchronous standby has received ${needed.join(', ')}` };
  return { ok: true, allowed };
}
