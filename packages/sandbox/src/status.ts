import type { Sandbox } from './sandbox.js';

interface NodeRow {
  id: string;
  role: string;
  port: number;
  state: string;
  lsn: string;
  lag: string;
}

/** A plain-text table of the nodes and their replication state, for the CLI. */
export async function formatStatus(sandbox: Sandbox): Promise<string> {
  const replication = new Map((await sandbox.replicationStatus().catch(() => [])).map((r) => [r.id, r]));
  const rows: NodeRow[] = await Promise.all(
    sandbox.nodes.map(async (node): Promise<NodeRow> => {
      try {
        const [row] = await node.query<{ recovery: boolean; lsn: string }>(
          `SELECT pg_is_in_recovery() AS recovery,
                  (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn`,
        );
        const rep = replication.get(node.id);
        return {
          id: node.id,
          role: row!.recovery ? 'replica' : 'primary',
          port: node.port,
          state: row!.recovery ? (rep?.state ?? 'not streaming') : 'accepting writes',
          lsn: row!.lsn ?? '-',
          lag: rep?.replayLagBytes == null ? '-' : `${rep.replayLagBytes} B`,
        };
      } catch (err) {
        return { id: node.id, role: '?', port: node.port, state: `down (${(err as Error).message})`, lsn: '-', lag: '-' };
      }
    }),
  );
  const header: NodeRow = { id: 'NODE', role: 'ROLE', port: 0, state: 'STATE', lsn: 'LSN', lag: 'REPLAY LAG' };
  const cells = (r: NodeRow) => [r.id, r.role, r === header ? 'PORT' : String(r.port), r.state, r.lsn, r.lag];
  const all = [header, ...rows].map(cells);
  const widths = all[0]!.map((_, i) => Math.max(...all.map((c) => c[i]!.length)));
  const lines = all.map((c) => c.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
  if (sandbox.redis) lines.push('', `redis  ${sandbox.redis.url}  ${sandbox.redis.running ? 'running' : 'down'}`);
  return lines.join('\n');
}
