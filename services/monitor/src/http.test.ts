import type { Topology } from '@pgreplica/protocol';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createHttpApp, type HttpState } from './http.js';

const node = (id: string, role: 'primary' | 'replica', status: 'healthy' | 'degraded' | 'unhealthy', lagMs: number) => ({
  id, host: '127.0.0.1', port: 1, role, status, reason: status === 'healthy' ? ('ok' as const) : ('lagging' as const), priority: 0, weight: 1, tags: [],
  lagBytes: 0, lagMs, replayLsn: null, receiveLsn: null, timeline: 1, lastCheckAt: null, since: '2026-01-01T00:00:00.000Z', consecutiveFailures: 0,
});
const topology: Topology = {
  cluster: 'main', epoch: 2, primaryId: 'p1', systemIdentifier: '1', observedAt: '2026-01-01T00:00:00.000Z',
  nodes: [node('p1', 'primary', 'healthy', 0), node('r1', 'replica', 'healthy', 50), node('r2', 'replica', 'degraded', 8_000), node('r3', 'replica', 'unhealthy', 90_000)],
};
const state: HttpState = {
  topology: () => topology,
  health: () => ({ ok: true, leader: true, term: 3, epoch: 2, lastRoundAt: null, instanceId: 'm1' }),
  registry: new Registry(),
};

describe('monitor HTTP API', () => {
  const app = createHttpApp(state, undefined);
  const status = async (path: string) => (await app.request(path)).status;

  it('answers the HAProxy checks with 200 or 503', async () => {
    expect(await status('/nodes/p1/primary')).toBe(200);
    expect(await status('/nodes/r1/primary')).toBe(503);
    expect(await status('/nodes/r1/replica')).toBe(200);
    expect(await status('/nodes/r2/replica')).toBe(200);
    expect(await status('/nodes/r3/replica')).toBe(503);
    expect(await status('/nodes/p1/replica')).toBe(503);
    expect(await status('/nodes/r1/replica?lag=100')).toBe(200);
    expect(await status('/nodes/r2/replica?lag=1000')).toBe(503);
    expect(await status('/nodes/r3/read-only')).toBe(503);
    expect(await status('/nodes/p1/read-only')).toBe(200);
    expect(await status('/nodes/zz/replica')).toBe(404);
    expect(await status('/nodes/r1/replica?lag=soon')).toBe(400);
  });

  it('keeps a read-only (degraded) primary as the write target: HAProxy must not add an outage to its own', async () => {
    const readOnly: Topology = { ...topology, nodes: topology.nodes.map((n) => (n.id === 'p1' ? { ...n, status: 'degraded' as const, reason: 'read-only' as const } : n)) };
    const app = createHttpApp({ ...state, topology: () => readOnly }, undefined);
    const res = await app.request('/nodes/p1/primary');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'degraded', reason: 'read-only', ok: true });
    expect((await app.request('/nodes/p1/read-only')).status).toBe(200);
  });

  it('serves the topology, health and metrics', async () => {
    expect(await (await app.request('/topology')).json()).toEqual(topology);
    expect(await (await app.request('/health')).json()).toMatchObject({ ok: true, leader: true, term: 3 });
    expect((await app.request('/metrics')).headers.get('content-type')).toContain('text/plain');
  });

  it('requires the bearer token for the topology and metrics when one is configured', async () => {
    const secured = createHttpApp(state, 's3cret-token');
    for (const path of ['/topology', '/metrics']) {
      expect((await secured.request(path)).status).toBe(401);
      expect((await secured.request(path, { headers: { authorization: 'Bearer wrong-token!' } })).status).toBe(401);
      expect((await secured.request(path, { headers: { authorization: 'Bearer s3cret-tokex' } })).status).toBe(401);
      expect((await secured.request(path, { headers: { authorization: 'Bearer s3cret-token' } })).status).toBe(200);
    }
  });

  it('answers health checks without the token with a verdict only (no host, user or position)', async () => {
    const secured = createHttpApp(state, 's3cret-token');
    const open = await secured.request('/health');
    expect(open.status).toBe(200);
    expect(await open.json()).toEqual({ ok: true });
    const full = await secured.request('/health', { headers: { authorization: 'Bearer s3cret-token' } });
    expect(await full.json()).toMatchObject({ ok: true, leader: true, instanceId: 'm1' });
    const check = await secured.request('/nodes/r1/replica');
    expect(check.status).toBe(200);
    const body = JSON.stringify(await check.json());
    expect(body).not.toMatch(/127\.0\.0\.1|Lsn|host|user/i);
  });
});
