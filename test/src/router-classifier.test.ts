import { classify, type Router, SIDE_EFFECT_FUNCTIONS, SIDE_EFFECT_PREFIXES } from '@pgreplica/router-client';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMonitor } from './monitor-fixture.js';
import { portMap, routerSees, startRouter } from './router-fixture.js';

describe('router: the classifier against a real server', () => {
  let sandbox: Sandbox;
  let monitor: Awaited<ReturnType<typeof startMonitor>>;
  let db: Router;
  let ports: Map<number, string>;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 1 });
    ports = portMap(sandbox);
    monitor = await startMonitor(sandbox);
    await sandbox.primary.query('CREATE TABLE orders (id bigserial PRIMARY KEY, n int)');
    await sandbox.primary.query('CREATE FUNCTION create_order(n int) RETURNS int LANGUAGE sql VOLATILE AS $$ INSERT INTO orders (n) VALUES (n); SELECT inet_server_port() $$');
    await sandbox.primary.query('CREATE FUNCTION order_port(n int) RETURNS int LANGUAGE sql STABLE AS $$ SELECT inet_server_port() + 0 * n $$');
    db = await startRouter(sandbox);
    await routerSees(db, (r) => r.getTopology().topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
  });
  afterAll(async () => {
    await db?.close();
    await monitor?.close();
    await sandbox?.stop();
  });

  it('a -- comment ends at a carriage return: the server runs two statements, the classifier sees two', async () => {
    const sql = 'SELECT 1 AS a --x\r; SELECT 2 AS b';
    const client = new pg.Client(sandbox.primary.connectionConfig);
    await client.connect();
    try {
      const results = (await client.query(sql)) as unknown as pg.QueryResult[];
      expect(results.map((r) => r.rows[0])).toEqual([{ a: 1 }, { b: 2 }]);
    } finally {
      await client.end();
    }
    expect(classify(sql)).toMatchObject({ target: 'primary', reason: 'multiple-statements' });
    expect(classify('SELECT 1 --x\r; DELETE FROM t').target).toBe('primary');
  });

  it('every built-in side-effect function it names exists on the server', async () => {
    const names = [...SIDE_EFFECT_FUNCTIONS];
    const found = await sandbox.primary.query<{ proname: string }>("SELECT DISTINCT proname FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace AND proname = ANY($1)", [names]);
    expect(names.filter((n) => !found.some((f) => f.proname === n))).toEqual([]);
    for (const prefix of SIDE_EFFECT_PREFIXES) {
      const [row] = await sandbox.primary.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace AND starts_with(proname, $1)", [prefix]);
      expect({ prefix, n: row!.n > 0 }).toEqual({ prefix, n: true });
    }
  });

  it('sends calls of VOLATILE user functions to the primary and STABLE ones to a replica (from the catalog)', async () => {
    expect(db.explain('SELECT create_order($1)')).toMatchObject({ role: 'primary', classification: { reason: 'side-effect-function', detail: 'create_order' } });
    const written = await db.query<{ create_order: number }>('SELECT create_order($1)', [1]);
    expect(ports.get(written.rows[0]!.create_order)).toBe('p1');
    const read = await db.query<{ order_port: number }>('SELECT order_port($1)', [1]);
    expect(ports.get(read.rows[0]!.order_port)).toBe('r1');
  });

  it('a function created after start: the replica refuses it (25006), it re-runs as a write, and the catalog is re-read', async () => {
    await sandbox.primary.query('CREATE FUNCTION late_order(n int) RETURNS int LANGUAGE sql VOLATILE AS $$ INSERT INTO orders (n) VALUES (n); SELECT inet_server_port() $$');
    // Replicated, but not yet in the router's catalog: classified as a read.
    const deadline = Date.now() + 10_000;
    while ((await sandbox.node('r1').query("SELECT count(*)::int AS n FROM pg_proc WHERE proname = 'late_order'"))[0]!.n === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(db.explain('SELECT late_order($1)').role).toBe('replica');
    const { rows } = await db.query<{ late_order: number }>('SELECT late_order($1)', [7]);
    expect(ports.get(rows[0]!.late_order)).toBe('p1');
    expect(await sandbox.primary.query('SELECT count(*)::int AS n FROM orders WHERE n = 7')).toEqual([{ n: 1 }]);
    const metrics = await db.metrics.registry.getSingleMetricAsString('pgreplica_router_queries_total');
    expect(metrics).toMatch(/role="primary",outcome="ok",reason="primary:read-only-refusal"\} 1/);
    await routerSees(db, (r) => r.explain('SELECT late_order($1)').role === 'primary', 10_000, 'late_order in the catalog');
  });
});
