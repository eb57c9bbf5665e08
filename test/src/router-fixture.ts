import type { NodeState, Topology } from '@pgreplica/protocol';
import { createRouter, type Router, type RouterOptions } from '@pgreplica/router-client';
import type { Sandbox } from '@pgreplica/sandbox';

/** A router on a sandbox's bus, with short timings for tests. */
export async function startRouter(sandbox: Sandbox, options: Partial<RouterOptions> = {}): Promise<Router> {
  const router = createRouter({
    cluster: 'main',
    redis: sandbox.redis?.url ?? sandbox.redisSentinel?.target,
    connection: { user: 'postgres', password: sandbox.primary.connectionConfig.password as string, database: 'postgres' },
    staleAfterMs: 3_000,
    ...options,
  });
  router.on('error', () => {});
  await router.ready();
  return router;
}

/** Waits until the router's view satisfies `check`. */
export async function routerSees(router: Router, check: (r: Router) => boolean, timeoutMs = 15_000, what = 'router view'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check(router)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(router.getTopology().topology?.nodes.map((n) => [n.id, n.role, n.status, n.lagMs]))}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Port → node id. */
export function portMap(sandbox: Sandbox): Map<number, string> {
  return new Map(sandbox.nodes.map((n) => [n.port, n.id]));
}

/**
 * `concurrency` loops writing `INSERT INTO ledger (id)` through the router
 * (ids from `firstId` on: a second loop on the same table starts past the first's),
 * recording each acknowledged id with the node that took it, and each failure.
 */
export function writeLoop(db: Router, sandbox: Sandbox, concurrency = 1, firstId = 1) {
  const ports = portMap(sandbox);
  const acked: { id: number; node: string; at: number }[] = [];
  const failures: string[] = [];
  let running = true;
  let next = firstId - 1;
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) {
      const id = ++next;
      try {
        const { rows } = await db.write<{ port: number }>('INSERT INTO ledger (id) VALUES ($1) RETURNING inet_server_port() AS port', [id]);
        acked.push({ id, node: ports.get(rows[0]!.port)!, at: Date.now() });
      } catch (err) {
        failures.push((err as Error).message);
        // A write that fails without I/O must not starve the event loop (timers, the test's own waits).
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
  });
  return {
    acked,
    failures,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** Ids of `ids` that are not in `ledger` on a node. */
export async function missingOn(sandbox: Sandbox, nodeId: string, ids: number[]): Promise<number[]> {
  const rows = await sandbox.node(nodeId).query<{ id: number }>('SELECT id FROM ledger');
  const present = new Set(rows.map((r) => r.id));
  return ids.filter((id) => !present.has(id));
}

/** A topology of the sandbox's nodes as a test playing the bus publishes it: every node healthy unless `status` says otherwise. */
export function busTopology(sandbox: Sandbox, epoch: number, primaryId: string, status: Record<string, Partial<NodeState>> = {}, cluster = 'main'): Topology {
  const now = new Date().toISOString();
  return {
    cluster,
    epoch,
    primaryId,
    systemIdentifier: null,
    observedAt: now,
    nodes: sandbox.nodes.map((n) => ({
      id: n.id, host: n.host, port: n.port, role: n.id === primaryId ? 'primary' : 'replica', status: 'healthy', reason: 'ok', priority: 1, weight: 1,
      tags: [], lagBytes: 0, lagMs: 0, replayLsn: null, receiveLsn: null, timeline: 1, lastCheckAt: null, since: now, consecutiveFailures: 0, ...status[n.id],
    })),
  };
}
