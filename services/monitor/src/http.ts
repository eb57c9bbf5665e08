import type { NodeState, Topology } from '@pgreplica/protocol';
import { createServiceApp } from '@pgreplica/runtime';
import type { Hono } from 'hono';
import type { Registry } from 'prom-client';

/** What the HTTP API reads from the running monitor. */
export interface HttpState {
  /** Latest snapshot, or null before the first round. */
  topology(): Topology | null;
  /** Liveness details; `ok` false makes /health answer 503. */
  health(): { ok: boolean; leader: boolean; term: number; epoch: number; lastRoundAt: string | null; instanceId: string };
  registry: Registry;
}

/**
 * The monitor's HTTP API: /health, /metrics, /topology, and per-node checks
 * answering 200 or 503 so HAProxy can route clients that do not use the
 * router (the idea of Patroni's REST checks). With a token, /metrics and
 * /topology require it; /health and the node checks do not, and tell a
 * caller without it no host, user or position.
 */
export function createHttpApp(state: HttpState, token: string | undefined): Hono {
  // HAProxy's checks send no token: /nodes/* stay open and answer with a verdict, a role and a status only.
  const app = createServiceApp({ health: state.health, registry: state.registry, token, openPath: (path) => path.startsWith('/nodes/') });

  app.get('/topology', (c) => {
    const topology = state.topology();
    return topology ? c.json(topology) : c.json({ error: 'no probe round completed yet' }, 503);
  });

  const withNode = (handler: (node: NodeState, topology: Topology, lagLimitMs: number | null) => { ok: boolean; why: string }) =>
    (c: { req: { param(name: string): string; query(name: string): string | undefined }; json: (body: unknown, status: 200 | 400 | 404 | 503) => Response }) => {
      const topology = state.topology();
      if (!topology) return c.json({ ok: false, why: 'no probe round completed yet' }, 503);
      const node = topology.nodes.find((n) => n.id === c.req.param('id'));
      if (!node) return c.json({ error: `unknown node "${c.req.param('id')}"` }, 404);
      const lag = c.req.query('lag');
      if (lag !== undefined && !/^\d+$/.test(lag)) return c.json({ error: 'lag must be a whole number of milliseconds' }, 400);
      const verdict = handler(node, topology, lag === undefined ? null : Number(lag));
      return c.json({ node: node.id, role: node.role, status: node.status, reason: node.reason, lagMs: node.lagMs, ...verdict }, verdict.ok ? 200 : 503);
    };

  app.get(
    '/nodes/:id/primary',
    withNode((node, topology) => {
      if (node.id !== topology.primaryId) return { ok: false, why: `primary of epoch ${topology.epoch} is ${topology.primaryId ?? 'unknown'}` };
      if (node.role !== 'primary') return { ok: false, why: 'not answering as a primary' };
      if (node.status === 'unhealthy' || node.status === 'unknown') return { ok: false, why: `status ${node.status}` };
      return { ok: true, why: 'primary' };
    }),
  );

  app.get(
    '/nodes/:id/replica',
    withNode((node, _topology, lagLimitMs) => {
      if (node.role !== 'replica') return { ok: false, why: `role ${node.role}` };
      if (node.status !== 'healthy' && node.status !== 'degraded') return { ok: false, why: `status ${node.status} (${node.reason})` };
      if (lagLimitMs !== null && (node.lagMs === null || node.lagMs > lagLimitMs)) return { ok: false, why: `lag ${node.lagMs ?? '?'} ms over ${lagLimitMs} ms` };
      return { ok: true, why: 'replica' };
    }),
  );

  app.get(
    '/nodes/:id/read-only',
    withNode((node, topology) => {
      if (node.role === 'primary' && node.id === topology.primaryId && node.status !== 'unhealthy' && node.status !== 'unknown') return { ok: true, why: 'primary' };
      if (node.role === 'replica' && (node.status === 'healthy' || node.status === 'degraded')) return { ok: true, why: 'replica' };
      return { ok: false, why: `role ${node.role}, status ${node.status} (${node.reason})` };
    }),
  );

  app.notFound((c) => c.json({ error: 'not found' }, 404));
  return app;
}
