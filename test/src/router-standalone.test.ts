import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRouter, type Router } from '@pgreplica/router-client';
import { type databaseHealth, healthHandler, pgreplicaMiddleware, readToken, TOKEN_HEADER } from '@pgreplica/router-client/http';
import { freePort, type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { portMap, routerSees } from './router-fixture.js';

describe('router without a bus', () => {
  let sandbox: Sandbox;
  const routers: Router[] = [];

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2, redis: false });
    await sandbox.primary.query('CREATE TABLE notes (id serial PRIMARY KEY, body text)');
  });
  afterAll(async () => {
    await Promise.all(routers.map((r) => r.close()));
    await sandbox?.stop();
  });

  const make = (extra: Record<string, unknown> = {}) => {
    const router = createRouter({
      cluster: 'main',
      connection: { user: 'postgres', password: sandbox.primary.connectionConfig.password as string, database: 'postgres' },
      nodes: sandbox.nodes.map((n) => ({ id: n.id, url: `postgres://${n.host}:${n.port}`, role: n.initialRole })),
      probeIntervalMs: 250,
      ...extra,
    });
    router.on('error', () => {});
    routers.push(router);
    return router;
  };

  it('probes the nodes itself (probe mode) and routes reads to replicas, writes to the primary', async () => {
    const db = make();
    await db.ready();
    await routerSees(db, (r) => r.getTopology().topology?.nodes.every((n) => n.status === 'healthy') === true, 10_000, 'probed healthy');
    const ports = portMap(sandbox);
    const { rows } = await db.query<{ port: number }>('SELECT inet_server_port() AS port');
    expect(['r1', 'r2']).toContain(ports.get(rows[0]!.port));
    const written = await db.write<{ port: number }>("INSERT INTO notes (body) VALUES ('x') RETURNING inet_server_port() AS port");
    expect(ports.get(written.rows[0]!.port)).toBe('p1');
  });

  it('starts with Redis down: seed nodes and the primary fallback keep it working', async () => {
    const db = make({ redis: `redis://127.0.0.1:${await freePort()}`, staleAfterMs: 1_000, readyTimeoutMs: 2_000 });
    await db.ready();
    await routerSees(db, (r) => r.getTopology().fallback, 5_000, 'fallback active');
    const ports = portMap(sandbox);
    const { rows } = await db.query<{ port: number }>('SELECT inet_server_port() AS port');
    expect(ports.get(rows[0]!.port)).toBe('p1');
    await db.write("INSERT INTO notes (body) VALUES ('redis is down')");
  });

  it('HTTP helpers carry the session token from response to the next request', async () => {
    const db = make();
    await db.ready();
    const middleware = pgreplicaMiddleware(db);
    const health = healthHandler(db);
    const server = createServer((req, res) => {
      if (req.url === '/health/database') return health(req, res);
      middleware(req as never, res, async () => {
        const session = (req as unknown as { db: ReturnType<Router['session']> }).db;
        try {
          if (req.method === 'POST') {
            const { rows } = await session.write<{ id: number }>("INSERT INTO notes (body) VALUES ('via http') RETURNING id");
            res.writeHead(201, { 'content-type': 'application/json' });
            res.end(JSON.stringify(rows[0]));
          } else {
            const id = new URL(req.url!, 'http://x').searchParams.get('id');
            const { rows } = await session.read('SELECT id FROM notes WHERE id = $1', [id]);
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ found: rows.length }));
          }
        } catch (err) {
          res.writeHead(500);
          res.end(String(err));
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const created = await fetch(`${base}/notes`, { method: 'POST' });
      const token = created.headers.get(TOKEN_HEADER);
      expect(token).toMatch(/^v1\./);
      const { id } = (await created.json()) as { id: number };
      const read = await fetch(`${base}/notes?id=${id}`, { headers: { [TOKEN_HEADER]: token! } });
      expect(await read.json()).toEqual({ found: 1 });
      const healthRes = await fetch(`${base}/health/database`);
      expect(healthRes.status).toBe(200);
      const body = (await healthRes.json()) as ReturnType<typeof databaseHealth>;
      expect(body.write.nodeId).toBe('p1');
      expect(JSON.stringify(body)).not.toContain(sandbox.primary.connectionConfig.password as string);
      expect(readToken({ headers: { [TOKEN_HEADER]: 'garbage' } })).toBeNull();
    } finally {
      server.close();
    }
  });
});
