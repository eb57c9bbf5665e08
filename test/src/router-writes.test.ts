import { decodeToken, PRIMARY_ONLY_LSN, type Router } from '@pgreplica/router-client';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMonitor } from './monitor-fixture.js';
import { portMap, routerSees, startRouter } from './router-fixture.js';

describe('router: writes and their read-your-writes tokens', () => {
  let sandbox: Sandbox;
  let monitor: Awaited<ReturnType<typeof startMonitor>>;
  let db: Router;
  let ports: Map<number, string>;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 1 });
    ports = portMap(sandbox);
    monitor = await startMonitor(sandbox);
    db = await startRouter(sandbox);
    await routerSees(db, (r) => r.getTopology().topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
    await db.write('CREATE TABLE items (id bigserial PRIMARY KEY, v text UNIQUE)');
  });
  afterAll(async () => {
    await db?.close();
    await monitor?.close();
    await sandbox?.stop();
  });

  it('never reports a committed write as failed: when the position cannot be read, a primary-only token', async () => {
    // An app role that may not read the WAL position: the token query fails after the commit.
    const password = 'app-password-0123456789';
    await sandbox.primary.query(`CREATE ROLE app_nolsn LOGIN PASSWORD '${password}'`);
    await sandbox.primary.query('GRANT ALL ON items, items_id_seq TO app_nolsn');
    await sandbox.primary.query('REVOKE EXECUTE ON FUNCTION pg_current_wal_insert_lsn(), pg_current_wal_lsn() FROM PUBLIC');
    const app = await startRouter(sandbox, { connection: { user: 'app_nolsn', password, database: 'postgres' } });
    try {
      const written = await app.write<{ id: string }>("INSERT INTO items (v) VALUES ('no-lsn') RETURNING id");
      expect(decodeToken(written.token)).toEqual({ epoch: 1, lsn: PRIMARY_ONLY_LSN });
      expect(await sandbox.primary.query("SELECT count(*)::int AS n FROM items WHERE v = 'no-lsn'")).toEqual([{ n: 1 }]);
      // Only the primary satisfies it.
      const read = await app.read<{ port: number }>('SELECT inet_server_port() AS port FROM items WHERE id = $1', [written.rows[0]!.id], { after: written.token });
      expect(read.rows.map((r) => ports.get(r.port))).toEqual(['p1']);
      const tx = await app.transactionWithToken(async (t) => t.query("INSERT INTO items (v) VALUES ('no-lsn-tx')"));
      expect(decodeToken(tx.token!).lsn).toBe(PRIMARY_ONLY_LSN);
      expect(await sandbox.primary.query("SELECT count(*)::int AS n FROM items WHERE v = 'no-lsn-tx'")).toEqual([{ n: 1 }]);
    } finally {
      await app.close();
      await sandbox.primary.query('GRANT EXECUTE ON FUNCTION pg_current_wal_insert_lsn(), pg_current_wal_lsn() TO PUBLIC');
    }
  });

  it('serves no read-your-writes read stale with synchronous_commit = off: 480 write-then-read pairs that wait for the replica', async () => {
    await sandbox.primary.query('ALTER SYSTEM SET synchronous_commit = off');
    await sandbox.primary.query('SELECT pg_reload_conf()');
    // Reads wait for the replica to replay the token, so most run there: a token below the commit would show.
    const rw = await startRouter(sandbox, { waitForLsnMs: 500 });
    try {
      let violations = 0;
      let fromReplica = 0;
      const worker = async (w: number, n: number) => {
        const session = rw.session();
        for (let i = 0; i < n; i++) {
          const written = await session.write<{ id: string }>('INSERT INTO items (v) VALUES ($1) RETURNING id', [`async-${w}-${i}`]);
          const read = await session.read<{ port: number }>('SELECT inet_server_port() AS port FROM items WHERE id = $1', [written.rows[0]!.id]);
          if (read.rows.length !== 1) violations++;
          else if (ports.get(read.rows[0]!.port) !== 'p1') fromReplica++;
        }
      };
      await Promise.all(Array.from({ length: 8 }, (_, w) => worker(w, 60)));
      process.stderr.write(`[router-writes] synchronous_commit=off: ${violations} stale of 480; ${((fromReplica / 480) * 100).toFixed(1)}% served by the replica\n`);
      expect(violations).toBe(0);
      expect(fromReplica).toBeGreaterThan(240);
    } finally {
      await rw.close();
      await sandbox.primary.query('ALTER SYSTEM RESET synchronous_commit');
      await sandbox.primary.query('SELECT pg_reload_conf()');
    }
  });

  it('takes the token on the same round trip without changing what a statement may be', async () => {
    // Statements that cannot run in a transaction block, and several statements in one text.
    await expect(db.write('VACUUM items')).resolves.toMatchObject({ token: expect.stringMatching(/^v1\.1\./) });
    await expect(db.write('CREATE INDEX CONCURRENTLY items_v ON items (v)')).resolves.toMatchObject({ token: expect.stringMatching(/^v1\.1\./) });
    const multi = await db.write("INSERT INTO items (v) VALUES ('m1'); INSERT INTO items (v) VALUES ('m2')");
    expect(multi.token).toMatch(/^v1\.1\./);
    expect(await sandbox.primary.query("SELECT count(*)::int AS n FROM items WHERE v IN ('m1', 'm2')")).toEqual([{ n: 2 }]);
    // A failed write leaves no open transaction behind on its pooled connection.
    await expect(db.write("INSERT INTO items (v) VALUES ('m1')")).rejects.toMatchObject({ code: '23505' });
    for (let i = 0; i < 20; i++) {
      const { rows } = await db.write<{ status: string }>("SELECT current_setting('transaction_isolation') AS status");
      expect(rows).toHaveLength(1);
    }
    // The token covers the commit: the insert position after it.
    const before = (await sandbox.primary.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn'))[0]!.lsn;
    const w = await db.write("INSERT INTO items (v) VALUES ('after')");
    const after = (await sandbox.primary.query<{ ok: boolean }>(`SELECT $1::pg_lsn > $2::pg_lsn AS ok`, [decodeToken(w.token).lsn, before]))[0]!;
    expect(after.ok).toBe(true);
  });
});
