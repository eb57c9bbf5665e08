import type { Monitor } from '@pgreplica/monitor';
import { type Router, RouterError, type RouterPool, runWithSession } from '@pgreplica/router-client';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';
import { startMonitor } from './monitor-fixture.js';
import { portMap, routerSees, startRouter } from './router-fixture.js';

// The pg.Pool face (router.asPool()), against real servers: the behaviours of
// node-postgres' own pool that apply (promise and callback forms, release
// twice, release(err), idle errors, end()), plus where each statement runs.
describe('router.asPool(): a pg.Pool over the router', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let router: Router;
  let pool: RouterPool;
  let ports: Map<number, string>;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    ports = portMap(sandbox);
    monitor = await startMonitor(sandbox);
    router = await startRouter(sandbox, { pool: { max: 4 } });
    await routerSees(router, (r) => r.getTopology().topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
    pool = router.asPool({ endRouter: false });
    await pool.query('CREATE TABLE items (id int PRIMARY KEY, name text)');
  });
  afterAll(async () => {
    await router?.close();
    await monitor?.close();
    await sandbox?.stop();
  });

  const node = (rows: { port: number }[]) => ports.get(rows[0]!.port);
  /** The backend pid of the connection a checked-out client holds. */
  const pidOf = (client: pg.PoolClient) => (client as pg.PoolClient & { processID: number | null }).processID;
  const PORT = 'SELECT inet_server_port() AS port';
  let nextId = 0;

  it('is a pg.Pool; query() sends reads to replicas and writes to the primary (promise and callback forms)', async () => {
    expect(pool).toBeInstanceOf(pg.Pool);
    const readers = new Set<string | undefined>();
    for (let i = 0; i < 40 && readers.size < 2; i++) readers.add(node((await pool.query<{ port: number }>(PORT)).rows));
    expect([...readers].sort()).toEqual(['r1', 'r2']);
    const written = await pool.query<{ port: number }>('INSERT INTO items VALUES ($1, $2) RETURNING inet_server_port() AS port', [++nextId, 'a']);
    expect(node(written.rows)).toBe('p1');

    const viaCallback = await new Promise<pg.QueryResult>((resolve, reject) => pool.query('SELECT $1::int AS n', [7], (err, res) => (err ? reject(err) : resolve(res))));
    expect(viaCallback.rows).toEqual([{ n: 7 }]);
    const configCallback = await new Promise<pg.QueryResult>((resolve, reject) => pool.query({ text: 'SELECT 8 AS n' }, (err, res) => (err ? reject(err) : resolve(res))));
    expect(configCallback.rows).toEqual([{ n: 8 }]);
    const failed = await new Promise<Error | undefined>((resolve) => pool.query('SELECT * FROM no_such_table', (err) => resolve(err)));
    expect((failed as pg.DatabaseError).code).toBe('42P01');
  });

  it('passes QueryConfig through: rowMode, types, and a named statement prepared on each node that runs it', async () => {
    const arrays = await pool.query({ text: 'SELECT 1::int AS a, 2::int AS b', rowMode: 'array' });
    expect(arrays.rows).toEqual([[1, 2]]);
    const typed = await pool.query({
      text: 'SELECT 41::int4 AS n',
      types: { getTypeParser: (oid: number) => (oid === 23 ? (v: string) => `int:${v}` : pg.types.getTypeParser(oid)) } as pg.CustomTypesConfig,
    });
    expect(typed.rows).toEqual([{ n: 'int:41' }]);
    const seen = new Set<string | undefined>();
    for (let i = 0; i < 60 && seen.size < 2; i++) {
      const r = await pool.query<{ port: number; v: number }>({ name: 'where-am-i', text: 'SELECT inet_server_port() AS port, $1::int AS v', values: [i] });
      expect(r.rows[0]!.v).toBe(i);
      seen.add(node(r.rows));
    }
    expect(seen.size).toBe(2);
    // The same name on the primary (a write prepared there), and back on the replicas.
    await pool.query({ name: 'insert-item', text: 'INSERT INTO items VALUES ($1, $2)', values: [++nextId, 'named'] });
    await pool.query({ name: 'insert-item', text: 'INSERT INTO items VALUES ($1, $2)', values: [++nextId, 'named'] });
  });

  it('connect(): a client pinned to the primary; release twice throws; the callback form gives done()', async () => {
    const client = await pool.connect();
    const first = await client.query<{ port: number }>(PORT);
    const second = await client.query<{ port: number; pid: number }>('SELECT inet_server_port() AS port, pg_backend_pid() AS pid');
    expect(node(first.rows)).toBe('p1');
    expect(node(second.rows)).toBe('p1');
    expect(second.rows[0]!.pid).toBe(pidOf(client));
    client.release();
    expect(() => client.release()).toThrow('Release called on client which has already been released to the pool.');
    await expect(client.query('SELECT 1')).rejects.toMatchObject({ code: 'released' });

    const rows = await new Promise<unknown[]>((resolve, reject) =>
      pool.connect((err, c, done) => {
        if (err || !c) return reject(err);
        c.query('SELECT 1 AS one', (qerr: Error | undefined, res: pg.QueryResult) => {
          done();
          return qerr ? reject(qerr) : resolve(res.rows);
        });
      }),
    );
    expect(rows).toEqual([{ one: 1 }]);
  });

  it('release(err) destroys the connection (a remove event), release() keeps it', async () => {
    const removed: unknown[] = [];
    pool.on('remove', (c) => removed.push(c));
    const kept = await pool.connect();
    await kept.query('SELECT 1');
    const keptPid = pidOf(kept);
    const doomed = await pool.connect();
    await doomed.query('SELECT 1');
    const pid = pidOf(doomed);
    expect(pid).not.toBe(keptPid);
    kept.release();
    doomed.release(new Error('broken'));
    await eventually(() => removed.length === 1, 5_000, 'remove event');
    const alive = async (p: number | null) => (await sandbox.primary.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1', [p]))[0]!.n === 1;
    await eventually(async () => !(await alive(pid)), 5_000, 'destroyed backend gone');
    expect(await alive(keptPid)).toBe(true);
    pool.removeAllListeners('remove');
  });

  it('emits error (with the client) when an idle connection fails, and the pool carries on', async () => {
    const errors: [Error, unknown][] = [];
    pool.on('error', (err, client) => errors.push([err, client]));
    const client = await pool.connect();
    await client.query('SELECT 1');
    const pid = pidOf(client);
    client.release();
    await sandbox.primary.query('SELECT pg_terminate_backend($1)', [pid]);
    await eventually(() => errors.length > 0, 5_000, 'idle error event');
    expect((errors[0]![0] as pg.DatabaseError).code).toBe('57P01');
    expect(errors[0]![1]).toBeInstanceOf(pg.Client);
    expect((await pool.query('INSERT INTO items VALUES ($1, $2) RETURNING id', [++nextId, 'after'])).rows).toEqual([{ id: nextId }]);
    pool.removeAllListeners('error');
  });

  it('forwards connect and acquire, and counts the node pools', async () => {
    const connected: unknown[] = [];
    const acquired: unknown[] = [];
    pool.on('connect', (c) => connected.push(c));
    pool.on('acquire', (c) => acquired.push(c));
    // More clients at once than the primary's pool holds idle: new connections open.
    const clients = await Promise.all(Array.from({ length: 4 }, () => pool.connect()));
    await Promise.all(clients.map((c) => c.query('SELECT pg_sleep(0.05)')));
    expect(acquired.length).toBeGreaterThanOrEqual(4);
    expect(connected.every((c) => c instanceof pg.Client)).toBe(true);
    expect(pool.totalCount).toBeGreaterThanOrEqual(4);
    expect(pool.idleCount).toBeLessThanOrEqual(pool.totalCount - 4);
    expect(pool.waitingCount).toBe(0);
    for (const c of clients) c.release();
    expect(pool.idleCount).toBeGreaterThanOrEqual(4);
    pool.removeAllListeners('connect');
    pool.removeAllListeners('acquire');
  });

  it('runs a read-only transaction on a replica, then gives it back: the next statement pins the primary', async () => {
    const client = await pool.connect();
    await client.query('BEGIN READ ONLY');
    const inTx = node((await client.query<{ port: number }>(PORT)).rows);
    expect(['r1', 'r2']).toContain(inTx);
    await client.query('COMMIT');
    const write = await client.query<{ port: number }>('INSERT INTO items VALUES ($1, $2) RETURNING inet_server_port() AS port', [++nextId, 'after-ro']);
    expect(node(write.rows)).toBe('p1');
    client.release();

    // Session state left in a read-only transaction keeps the client on its replica: a write is refused there, never moved.
    const sticky = await pool.connect();
    await sticky.query('START TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await sticky.query('SET search_path TO public');
    await sticky.query('COMMIT');
    await expect(sticky.query('INSERT INTO items VALUES ($1, $2)', [++nextId, 'refused'])).rejects.toMatchObject({ code: '25006' });
    sticky.release();

    // A plain BEGIN, and readOnlyTransactions: 'primary', stay on the primary.
    const onPrimary = router.asPool({ endRouter: false, readOnlyTransactions: 'primary' });
    const c = await onPrimary.connect();
    await c.query('BEGIN READ ONLY');
    expect(node((await c.query<{ port: number }>(PORT)).rows)).toBe('p1');
    await c.query('COMMIT');
    c.release();
    await onPrimary.end();
  });

  it("checkout: 'reads-first' routes a client's reads until its first write pins the primary", async () => {
    const face = router.asPool({ endRouter: false, checkout: 'reads-first' });
    const client = await face.connect();
    const readers = new Set<string | undefined>();
    for (let i = 0; i < 20; i++) readers.add(node((await client.query<{ port: number }>(PORT)).rows));
    expect([...readers].every((n) => n === 'r1' || n === 'r2')).toBe(true);
    await client.query('INSERT INTO items VALUES ($1, $2)', [++nextId, 'rf']);
    expect(node((await client.query<{ port: number }>(PORT)).rows)).toBe('p1');
    client.release();
    // The released client is handed out again (as pg-pool reuses its clients): as a new checkout, unpinned.
    const again = await face.connect();
    expect(again).toBe(client);
    expect(['r1', 'r2']).toContain(node((await again.query<{ port: number }>(PORT)).rows));
    again.release();
    expect(() => again.release()).toThrow('Release called on client which has already been released to the pool.');
    await face.end();
  });

  it('reads its writes in a session: pool.query writes and a transaction on a checked-out client raise the token', async () => {
    const session = router.session();
    await runWithSession(session, async () => {
      for (let i = 0; i < 10; i++) {
        const id = ++nextId;
        await pool.query('INSERT INTO items VALUES ($1, $2)', [id, 'ryw']);
        expect((await pool.query('SELECT name FROM items WHERE id = $1', [id])).rows).toEqual([{ name: 'ryw' }]);
      }
    });
    expect(session.token).toMatch(/^v1\./);
    const before = session.token;
    const id = ++nextId;
    await runWithSession(session, async () => {
      const client = await pool.connect();
      await client.query('BEGIN');
      await client.query('INSERT INTO items VALUES ($1, $2)', [id, 'tx']);
      await client.query('COMMIT');
      client.release();
      expect((await pool.query('SELECT name FROM items WHERE id = $1', [id])).rows).toEqual([{ name: 'tx' }]);
    });
    expect(session.token).not.toBe(before);
    // A face bound to a session, without the context.
    const bound = router.asPool({ endRouter: false, session: router.session() });
    await bound.query('INSERT INTO items VALUES ($1, $2)', [++nextId, 'bound']);
    expect((await bound.query('SELECT name FROM items WHERE id = $1', [nextId])).rows).toEqual([{ name: 'bound' }]);
    await bound.end();
  });

  it('refuses bad options and arguments, naming them', async () => {
    expect(() => router.asPool({ checkout: 'sometimes' as 'primary' })).toThrow(/checkout must be 'primary' or 'reads-first'/);
    expect(() => router.asPool({ readOnlyTransactions: 'nowhere' as 'replica' })).toThrow(RouterError);
    expect(() => pool.query({ submit() {} } as unknown as pg.Submittable)).toThrow(/does not take a Submittable/);
    await expect(pool.query(undefined as unknown as string)).rejects.toThrow(/first argument must be SQL text or a QueryConfig/);
  });

  it('end(): waits for checked-out clients, closes the router; then query() and connect() reject as pg-pool does', async () => {
    const own = await startRouter(sandbox);
    const face = own.asPool();
    const client = await face.connect();
    await client.query('SELECT 1');
    let ended = false;
    const ending = face.end().then(() => (ended = true));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(ended).toBe(false);
    await expect(face.query('SELECT 1')).rejects.toThrow('Cannot use a pool after calling end on the pool');
    await expect(face.connect()).rejects.toThrow('Cannot use a pool after calling end on the pool');
    await expect(face.end()).rejects.toThrow('Called end on pool more than once');
    client.release();
    await ending;
    expect(face.ended).toBe(true);
    await expect(own.query('SELECT 1')).rejects.toMatchObject({ code: 'closed' });
  });
});
