import type { BusEvent, NodeState, Topology } from '@pgreplica/protocol';

/** Aligns rows into columns. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/** A short age ("12s", "5m", "3h") of an ISO time. */
export function age(iso: string): string {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
}

/**
 * The role to show: the epoch's primary is the only `primary`; any other
 * node that takes writes is a `stale primary` (a deposed one not fenced yet),
 * a fenced one is `fenced`.
 */
export function shownRole(n: NodeState, t: Topology): string {
  if (n.id === t.primaryId) return n.role === 'primary' ? 'primary' : `primary (${n.role})`;
  if (n.reason === 'fenced') return 'fenced';
  if (n.role === 'primary') return 'stale primary';
  return n.role;
}

/** The `status` table. */
export function formatStatus(t: Topology, leader: string, paused: boolean): string {
  const rows = [['NODE', 'ROLE', 'STATUS', 'REASON', 'LAG', 'LAG BYTES', 'LSN', 'SINCE']];
  for (const n of t.nodes) {
    rows.push([
      n.id + (n.id === t.primaryId ? '*' : ''),
      shownRole(n, t),
      n.status,
      n.reason,
      n.lagMs === null ? '-' : `${n.lagMs}ms`,
      n.lagBytes === null ? '-' : String(n.lagBytes),
      n.replayLsn ?? '-',
      age(n.since),
    ]);
  }
  return `cluster ${t.cluster}, epoch ${t.epoch}, primary ${t.primaryId ?? '?'}, monitor ${leader}, observed ${age(t.observedAt)} ago${paused ? ', AUTOMATIC REMEDIATION PAUSED' : ''}\n${table(rows)}`;
}

/** One event as a line of `watch` and `events`. */
export function formatEvent(e: BusEvent): string {
  const base = `${e.at} ${e.type.padEnd(20)} t${e.term}/s${e.seq} e${e.epoch}`;
  switch (e.type) {
    case 'node.status':
      return `${base} ${e.nodeId}: ${e.from} -> ${e.to} (${e.reason}${e.detail ? `: ${e.detail}` : ''})`;
    case 'primary.changed':
      return `${base} ${e.fromId ?? '?'} -> ${e.toId} (${e.cause})`;
    case 'snapshot':
      return `${base} primary ${e.topology.primaryId}, ${e.topology.nodes.map((n: NodeState) => `${n.id}=${n.status}`).join(' ')}`;
    case 'failover.suppressed':
    case 'failover.aborted':
      return `${base} ${e.failedPrimaryId}: ${e.reason}`;
    case 'failover.finished':
      return `${base} ${e.fromId} -> ${e.toId}, lost ${e.lostBytes ?? '?'} bytes, ${JSON.stringify(e.phasesMs)}`;
    case 'switchover.finished':
      return `${base} ${e.fromId} -> ${e.toId} ok=${e.ok}, write pause ${Math.round(e.writePauseMs)} ms${e.detail ? `: ${e.detail}` : ''}`;
    case 'slot.dropped':
      return `${base} ${e.slotName}${e.dryRun ? ' (dry run)' : ''}, retained ${e.retainedBytesBefore} -> ${e.retainedBytesAfter} bytes`;
    case 'remediation.failed':
      return `${base} ${e.job} ${e.jobId}: ${e.error}`;
    case 'node.rejoined':
      return `${base} ${e.nodeId} streams from ${e.primaryId} again${e.lostTail ? `; lost tail ${e.lostTail.fromLsn}..${e.lostTail.toLsn} kept in ${e.lostTail.savedTo ?? '?'}` : ''}`;
    default:
      return base;
  }
}
