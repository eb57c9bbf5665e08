import type { PostgresNode } from './postgres-node.js';
import type { ReplicationRow, Sandbox } from './sandbox.js';

interface NodeRow {
  id: string;
  role: string;
  port: number;
  state: string;
  lsn: string;
  lag: string;
}

/** What a node answered, or why it did not. */
type Probe = { ok: true; recovery: boolean; lsn: string } | { ok: false; fenced: boolean; error: string };

async function probe(node: PostgresNode): Promise<Probe> {
  try {
    const [row] = await node.query<{ recovery: boolean; lsn: string }>(
      `SELECT pg_is_in_recovery() AS recovery,
              (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn`,
    );
    return { ok: true, recovery: row!.recovery, lsn: row!.lsn ?? '-' };
  } catch (err) {
    const e = err as { code?: string; message: string };
    return { ok: false, fenced: e.code === '55000' && /not currently accepting connections/.test(e.message), error: e.message };
  }
}

/**
 * A plain-text table of the nodes and their replication state. `primaryId`
 * is the primary of the current epoch as the monitor says (the epoch's
 * primary is the only `primary`; any other writable node is a stale one);
 * without it, the one writable node. Replication is read on that primary.
 */
export async function formatStatus(sandbox: Sandbox, view: { primaryId?: string | null } = {}): Promise<string> {
  const probes = new Map(await Promise.all(sandbox.nodes.map(async (n) => [n.id, await probe(n)] as const)));
  const writable = sandbox.nodes.filter((n) => {
    const p = probes.get(n.id);
    return p?.ok === true && !p.recovery;
  });
  const primary = writable.find((n) => n.id === view.primaryId) ?? (view.primaryId ? undefined : writable.length === 1 ? writable[0] : undefined);
  const replication = new Map<string, ReplicationRow>(
    primary ? (await sandbox.replicationStatus(primary).catch(() => [])).map((r) => [r.id, r]) : [],
  );
  const rows: NodeRow[] = sandbox.nodes.map((node) => {
    const p = probes.get(node.id)!;
    if (!p.ok) {
      const state = p.fenced ? 'fenced: refuses connections until it rejoins' : `down (${p.error})`;
      return { id: node.id, role: p.fenced ? 'fenced' : '?', port: node.port, state, lsn: '-', lag: '-' };
    }
    const rep = replication.get(node.id);
    if (!p.recovery) {
      const current = node.id === primary?.id;
      return { id: node.id, role: current ? 'primary' : 'stale primary', port: node.port, state: current ? 'accepting writes' : 'writable, not the epoch\'s primary', lsn: p.lsn, lag: '-' };
    }
    const state = rep?.state ? `${rep.state} from ${primary?.id}` : primary ? `not streaming from ${primary.id}` : 'replica (no primary known)';
    return { id: node.id, role: 'replica', port: node.port, state, lsn: p.lsn, lag: rep?.replayLagBytes == null ? '-' : `${rep.replayLagBytes} B` };
  });
  const header: NodeRow = { id: 'NODE', role: 'ROLE', port: 0, state: 'STATE', lsn: 'LSN', lag: 'REPLAY LAG' };
  const cells = (r: NodeRow) => [r.id, r.role, r === header ? 'PORT' : String(r.port), r.state, r.lsn, r.lag];
  const all = [header, ...rows].map(cells);
  const widths = all[0]!.map((_, i) => Math.max(...all.map((c) => c[i]!.length)));
  const lines = all.map((c) => c.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
  if (sandbox.redis) lines.push('', `redis  ${sandbox.redis.redactedUrl}  ${sandbox.redis.running ? 'running' : 'down'}`);
  return lines.join('\n');
}
