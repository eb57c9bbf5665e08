import type { Monitor } from '@pgreplica/monitor';
import { createEvent, encodeEvent, busKeys } from '@pgreplica/protocol';
import type { Router } from '@pgreplica/router-client';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMonitor } from './monitor-fixture.js';
import { portMap, routerSees, startRouter } from './router-fixture.js';

const BUS_KEY = 'router-test-bus-key-0123456789';

describe('router: routing on a live cluster', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let db: Router;
  let ports: Map<number, string>;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    ports = portMap(sandbox);
    monitor = await startMonitor(sandbox, { nodes: sandbox.nodes.map((n) => ({ id: n.id, host: n.host, port: n.port, priority: 1 })) }, BUS_KEY);
    db = await startRouter(sandbox, { busKey: BUS_KEY });
    await routerSees(db, (r) => r.getTopology().topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
    await db.query('CREATE TABLE items (id bigserial PRIMARY KEY, v text)');
  });
  afterAll(async () => {
    await db?.close();
    await monitor?.close();
    await sandbox?.stop();
  });

  it('spreads reads over both replicas and sends writes to the primary', async () => {
    const served = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const { rows } = await db.query<{ port: number }>('SELECT inet_server_port() AS port');
      const id = ports.get(rows[0]!.port)!;
      served.set(id, (served.get(id) ?? 0) + 1);
    }
    expect(served.get('p1') ?? 0).toBe(0);
    // Both serve (selection weighs latency, which a loaded machine skews: at least a tenth each).
    expect(served.get('r1')).toBeGreaterThanOrEqual(30);
    expect(served.get('r2')).toBeGreaterThanOrEqual(30);
    const write = await db.query<{ port: number }>("INSERT INTO items (v) VALUES ('w') RETURNING inet_server_port() AS port");
    expect(ports.get(write.rows[0]!.port)).toBe('p1');
    const explicit = await db.write<{ port: number }>('SELECT inet_server_port() AS port');
    expect(ports.get(explicit.rows[0]!.port)).toBe('p1');
    expect(explicit.token).toMatch(/^v1\.1\.[0-9A-F]+\/[0-9A-F]+$/);
  });

  it('explains where a call goes and why', () => {
    expect(db.explain('SELECT 1')).toMatchObject({ role: 'replica', reason: 'replica:lag-ok', classification: { reason: 'read' } });
    expect(db.explain('SELECT * FROM items FOR UPDATE')).toMatchObject({ nodeId: 'p1', reason: 'primary:classified-write', classification: { reason: 'locking-clause' } });
    expect(db.explain('SELECT 1', { target: 'primary' })).toMatchObject({ nodeId: 'p1', reason: 'primary:explicit' });
    const metrics = db.getMetrics();
    expect(metrics.map((m) => m.id)).toEqual(['p1', 'r1', 'r2']);
    expect(JSON.stringify(metrics)).not.toContain(sandbox.primary.connectionConfig.password as string);
  });

  it('serves no read-your-writes read stale: 2,000 write-then-read pairs with a replica 500 ms behind', async () => {
    await sandbox.node('r1').setApplyDelay(500);
    try {
      await routerSees(db, (r) => (r.getTopology().topology?.nodes.find((n) => n.id === 'r1')?.lagMs ?? 0) >= 200, 15_000, 'r1 lagging');
      let violations = 0;
      let fromReplicas = 0;
      const worker = async (n: number) => {
        const session = db.session();
        for (let i = 0; i < n; i++) {
          const written = await session.write<{ id: string }>('INSERT INTO items (v) VALUES ($1) RETURNING id', [`s${i}`]);
          const read = await session.read<{ id: string; port: number }>('SELECT id, inet_server_port() AS port FROM items WHERE id = $1', [written.rows[0]!.id]);
          if (read.rows.length !== 1) violations++;
          else if (ports.get(read.rows[0]!.port) !== 'p1') fromReplicas++;
        }
      };
      await Promise.all(Array.from({ length: 8 }, () => worker(250)));
      // Reported figure (the benchmark tracks it too): share of those reads served by replicas.
      process.stderr.write(`[router-routing] read-your-writes: 0 of 2000 stale expected, ${violations} seen; ${(fromReplicas / 20).toFixed(1)}% served by replicas\n`);
      expect(violations).toBe(0);
      expect(fromReplicas).toBeGreaterThan(0);
    } finally {
      await sandbox.node('r1').setApplyDelay(0);
    }
  });

  it('maxLagMs keeps reads off a delayed replica', async () => {
    await sandbox.node('r1').setApplyDelay(3_000);
    try {
      await routerSees(db, (r) => (r.getTopology().topology?.nodes.find((n) => n.id === 'r1')?.lagMs ?? 0) > 1_000, 15_000, 'r1 lag > 1 s');
      const served = new Set<string>();
      for (let i = 0; i < 100; i++) {
        const { rows } = await db.read<{ port: number }>('SELECT inet_server_port() AS port', [], { maxLagMs: 500 });
        served.add(ports.get(rows[0]!.port)!);
      }
      expect([...served]).toEqual(['r2']);
      expect(db.explain('SELECT 1', { maxLagMs: 500 })).toMatchObject({ nodeId: 'r2' });
    } finally {
      await sandbox.node('r1').setApplyDelay(0);
    }
  });

  it('ignores forged events: unsigned or wrongly signed, naming another primary', async () => {
    const keys = busKeys('main');
    const redis = new Redis(sandbox.redis!.url);
    try {
      const base = { cluster: 'main', term: 999, seq: 1, epoch: 99 };
      const unsigned = createEvent('primary.changed', { fromId: 'p1', toId: 'r2', cause: 'manual' }, base);
      const wrongKey = createEvent('primary.changed', { fromId: 'p1', toId: 'r2', cause: 'manual' }, { ...base, seq: 2, key: 'not-the-bus-key-at-all-0000' });
      const forgedSnapshot = createEvent('snapshot', { topology: { ...db.getTopology().topology!, epoch: 99, primaryId: 'r2' } }, { ...base, seq: 3 });
      for (const e of [unsigned, wrongKey, forgedSnapshot]) await redis.publish(keys.events, encodeEvent(e));
      await redis.set(keys.topology, encodeEvent(forgedSnapshot));
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(db.getWriteTarget().nodeId).toBe('p1');
      expect(db.getTopology().epoch).toBe(1);
      const write = await db.write<{ port: number }>("INSERT INTO items (v) VALUES ('after forgery') RETURNING inet_server_port() AS port");
      expect(ports.get(write.rows[0]!.port)).toBe('p1');
      const metrics = await db.metrics.registry.getSingleMetricAsString('pgreplica_router_bus_events_total');
      expect(metrics).toMatch(/outcome="unsigned"\} [1-9]/);
      expect(metrics).toMatch(/outcome="bad-signature"\} [1-9]/);
    } finally {
      await redis.quit();
    }
  });

  it('falls back to the primary when the bus goes silent, and recovers on a fresh snapshot', async () => {
    const changes: boolean[] = [];
    db.on('fallback', (s) => changes.push(s.active));
    await monitor.close();
    await routerSees(db, (r) => r.getTopology().fallback, 10_000, 'fallback');
    const { rows } = await db.query<{ port: number }>('SELECT inet_server_port() AS port');
    expect(ports.get(rows[0]!.port)).toBe('p1');
    expect(db.explain('SELECT 1')).toMatchObject({ reason: 'primary:bus-stale' });
    monitor = await startMonitor(sandbox, { nodes: sandbox.nodes.map((n) => ({ id: n.id, host: n.host, port: n.port, priority: 1 })) }, BUS_KEY);
    await routerSees(db, (r) => !r.getTopology().fallback, 15_000, 'fresh again');
    expect(changes).toEqual([true, false]);
    await routerSees(db, (r) => r.explain('SELECT 1').role === 'replica', 10_000, 'replica reads again');
  });
});
