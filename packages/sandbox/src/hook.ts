#!/usr/bin/env node
/**
 * pgreplica-sandbox-hook <stop|rejoin|kill>: the host-access hooks of the
 * pgreplica worker, for a sandbox. Configure the worker with e.g.
 *   worker.hooks.rejoin: "pgreplica-sandbox-hook rejoin"
 * and PGREPLICA_SANDBOX_STATE=<sandbox.writeStateFile()> in its environment.
 * Reads PGREPLICA_NODE_ID (and PGREPLICA_PRIMARY_ID for rejoin), as the worker sets them.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withNodeLock } from './node-lock.js';
import { PostgresNode } from './postgres-node.js';
import { rejoinAsReplica } from './rejoin.js';
import type { SandboxState } from './sandbox.js';

async function main(): Promise<void> {
  const action = process.argv[2];
  const statePath = process.env.PGREPLICA_SANDBOX_STATE;
  const nodeId = process.env.PGREPLICA_NODE_ID;
  if (!action || !['stop', 'rejoin', 'kill'].includes(action)) throw new Error('usage: pgreplica-sandbox-hook <stop|rejoin|kill>');
  if (!statePath || !nodeId) throw new Error('PGREPLICA_SANDBOX_STATE and PGREPLICA_NODE_ID must be set');
  const state = JSON.parse(readFileSync(statePath, 'utf8')) as SandboxState;
  const ctx = { pgBinDir: state.pgBinDir, user: state.user, logDir: state.logDir, socketDir: state.socketDir, superuser: state.superuser, database: state.database, settings: state.settings, tls: state.tls };
  const nodeOf = (id: string) => {
    const n = state.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no sandbox node ${id}`);
    return new PostgresNode(n.id, 'replica', n.port, n.dataDir, ctx);
  };
  const node = nodeOf(nodeId);
  // A fence's kill is a power-off: immediate, whatever else is going on. A stop and a
  // rejoin are the node's lifecycle jobs, run one at a time with any other start of it.
  if (action === 'kill') await node.kill();
  else if (action === 'stop') await withNodeLock(state.baseDir, nodeId, () => node.stop('fast'));
  else {
    const primaryId = process.env.PGREPLICA_PRIMARY_ID;
    if (!primaryId) throw new Error('rejoin needs PGREPLICA_PRIMARY_ID');
    const primary = nodeOf(primaryId);
    const replication = { user: state.replicationUser.name, password: state.replicationUser.password };
    const report = await withNodeLock(state.baseDir, nodeId, () =>
      rejoinAsReplica(node, ctx, { host: primary.host, port: primary.port }, replication, {
        baseDir: state.baseDir,
        setupScript: join(state.baseDir, 'conf', 'replica-setup.sh'),
      }),
    );
    // The worker reads what was done, and what the node wrote past the fork, from here.
    if (process.env.PGREPLICA_REPORT_FILE) writeFileSync(process.env.PGREPLICA_REPORT_FILE, JSON.stringify(report));
    process.stdout.write(`${JSON.stringify(report)}\n`);
  }
  process.stdout.write(`${action} ${nodeId}: done\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`pgreplica-sandbox-hook: ${(err as Error).message}\n`);
  process.exit(1);
});
