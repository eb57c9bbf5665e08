import { EventEmitter } from 'node:events';
import type { NodeState } from '@pgreplica/protocol';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { Binding, PoolHost } from './pool-host.js';
import type { Router } from './router.js';
import { RouterPoolClient } from './router-pool-client.js';
import { Session } from './session.js';
import { statementText } from './statement.js';
import type { DecodedToken } from './tokens.js';

/** A node-postgres client that records statements and follows BEGIN/COMMIT like the server's ReadyForQuery status. */
class FakeClient extends EventEmitter {
  readonly ran: string[] = [];
  released: unknown = 'no';
  #status: 'I' | 'T' | 'E' = 'I';
  readonly answer: (sql: string) => Error | pg.QueryResultRow[] | undefined;

  constructor(readonly node: string, answer: (sql: string) => Error | pg.QueryResultRow[] | undefined = () => undefined) {
    super();
    this.answer = answer;
  }

  async query(statement: string | pg.QueryConfig): Promise<pg.QueryResult> {
    const sql = statementText(statement);
    this.ran.push(sql);
    const answer = this.answer(sql);
    if (answer instanceof Error) {
      if (this.#status === 'T') this.#status = 'E';
      throw answer;
    }
    if (/^begin|^start/i.test(sql)) this.#status = 'T';
    else if (/^(commit|rollback|end)\b/i.test(sql)) this.#status = 'I';
    return { rows: answer ?? [], rowCount: 0, command: '', oid: 0, fields: [] };
  }

  getTransactionStatus(): 'I' | 'T' | 'E' {
    return this.#status;
  }

  release(err?: unknown): void {
    this.released = err;
  }
}

const node = (id: string, role: 'primary' | 'replica'): NodeState => ({ id, role }) as NodeState;

/** A host that hands out fake clients and records what it was asked. */
function fakeHost(options: { primaries?: (() => FakeClient)[]; replica?: () => FakeClient; processWide?: boolean } = {}) {
  const log: string[] = [];
  const tokens: DecodedToken[] = [];
  let primaries = 0;
  const host: PoolHost = {
    isRead: (sql) => /^\s*select/i.test(sql) && !/nextval/i.test(sql),
    explicit: false,
    bindPrimary: async (): Promise<Binding> => {
      const index = primaries++;
      const make = options.primaries?.[Math.min(index, options.primaries.length - 1)] ?? (() => new FakeClient(`p${index}`));
      const client = make();
      log.push(`primary:${client.node}`);
      return { node: node(client.node, 'primary'), client: client as unknown as pg.PoolClient, role: 'primary', epoch: 3 };
    },
    bindReadOnly: async (after): Promise<Binding> => {
      const client = options.replica?.() ?? new FakeClient('r1');
      log.push(`read-only:${client.node}:${after ?? 'none'}`);
      return { node: node(client.node, 'replica'), client: client as unknown as pg.PoolClient, role: 'replica', epoch: 3 };
    },
    tokenAfterCommit: async (binding, lsn) => ({ epoch: binding.epoch, lsn: lsn ?? '0/AA' }),
    noteToken: (token) => tokens.push(token),
    processWideToken: options.processWide ?? false,
    refresh: async () => {
      log.push('refresh');
    },
    watchPools: () => () => {},
    counts: () => ({ total: 0, idle: 0, waiting: 0 }),
    poolOptions: {},
    close: async () => {},
  };
  const routed: string[] = [];
  const router = {
    read: async (sql: string | pg.QueryConfig) => {
      routed.push(`read:${statementText(sql)}`);
      return { rows: [] };
    },
  } as unknown as Router;
  return { host, router, log, tokens, routed };
}

function client(h: ReturnType<typeof fakeHost>, checkout: 'primary' | 'reads-first' = 'primary', session?: Session) {
  return new RouterPoolClient({ host: h.host, router: h.router, checkout, readOnlyOnReplicas: true, onRelease: () => {} }, session);
}

describe('RouterPoolClient', () => {
  it('pins the primary at its first statement and keeps it until release', async () => {
    const p = new FakeClient('p0');
    const h = fakeHost({ primaries: [() => p] });
    const c = client(h);
    expect(h.log).toEqual([]);
    await c.query('SELECT 1');
    await c.query('INSERT INTO t VALUES (1)');
    await c.query('SELECT 2');
    expect(h.log).toEqual(['primary:p0']);
    expect(p.ran).toEqual(['SELECT 1', 'INSERT INTO t VALUES (1)', 'SELECT 2']);
    c.release();
    expect(p.released).toBeUndefined();
    expect(() => c.release()).toThrow('Release called on client which has already been released to the pool.');
  });

  it('runs statements in call order, also when called without awaiting', async () => {
    const p = new FakeClient('p0');
    const h = fakeHost({ primaries: [() => p] });
    const c = client(h);
    await Promise.all([c.query('BEGIN'), c.query('INSERT INTO t VALUES (1)'), c.query('COMMIT')]);
    expect(p.ran.filter((s) => !s.startsWith("SELECT current_setting"))).toEqual(['BEGIN', 'INSERT INTO t VALUES (1)', 'COMMIT']);
  });

  it('a read-only transaction first: a replica, given back at its end; the next statement pins the primary', async () => {
    const r = new FakeClient('r1');
    const h = fakeHost({ replica: () => r });
    const session = new Session({} as never, 'v1.3.0/10');
    const c = client(h, 'primary', session);
    await c.query('BEGIN READ ONLY');
    await c.query('SELECT 1');
    await c.query('COMMIT');
    expect(r.released).toBeUndefined();
    await c.query('INSERT INTO t VALUES (1)');
    expect(h.log).toEqual(['read-only:r1:v1.3.0/10', 'primary:p0']);
  });

  it('stays on the replica when its read-only transaction left session state', async () => {
    const r = new FakeClient('r1', (sql) => (sql.startsWith('INSERT') ? Object.assign(new Error('read-only'), { code: '25006' }) : undefined));
    const h = fakeHost({ replica: () => r });
    const c = client(h);
    await c.query('START TRANSACTION READ ONLY');
    await c.query('SET search_path TO x');
    await c.query('COMMIT');
    await expect(c.query('INSERT INTO t VALUES (1)')).rejects.toMatchObject({ code: '25006' });
    expect(h.log).toEqual(['read-only:r1:none']);
    expect(r.ran.at(-1)).toBe('INSERT INTO t VALUES (1)');
  });

  it("checkout 'reads-first': reads are routed one by one until a write pins the primary", async () => {
    const h = fakeHost();
    const c = client(h, 'reads-first');
    await c.query('SELECT 1');
    await c.query({ text: 'SELECT 2', name: 'two' });
    expect(h.routed).toEqual(['read:SELECT 1', 'read:SELECT 2']);
    await c.query('SELECT nextval($1)', ['s']);
    await c.query('SELECT 3');
    expect(h.log).toEqual(['primary:p0']);
    expect(h.routed).toHaveLength(2);
  });

  it('a first write refused as read-only (25006) moves to the new primary; a later one does not', async () => {
    const refused = () => Object.assign(new Error('cannot execute INSERT in a read-only transaction'), { code: '25006' });
    const old = new FakeClient('old', (sql) => (sql.startsWith('INSERT') ? refused() : undefined));
    const h = fakeHost({ primaries: [() => old, () => new FakeClient('new')] });
    const c = client(h);
    await c.query('INSERT INTO t VALUES (1)');
    expect(h.log).toEqual(['primary:old', 'refresh', 'primary:new']);

    const stale = new FakeClient('stale', (sql) => (sql.startsWith('INSERT') ? refused() : undefined));
    const h2 = fakeHost({ primaries: [() => stale] });
    const c2 = client(h2);
    await c2.query('SELECT 1');
    await expect(c2.query('INSERT INTO t VALUES (1)')).rejects.toMatchObject({ code: '25006' });
    expect(h2.log).toEqual(['primary:stale']);
  });

  it('a BEGIN on a primary already made read-only rolls back and begins on the new primary', async () => {
    const drained = new FakeClient('drained', (sql) => (sql.startsWith('SELECT current_setting') ? [{ ro: 'on' }] : undefined));
    const fresh = new FakeClient('fresh', (sql) => (sql.startsWith('SELECT current_setting') ? [{ ro: 'off' }] : undefined));
    const h = fakeHost({ primaries: [() => drained, () => fresh] });
    const c = client(h);
    await c.query('BEGIN');
    await c.query('INSERT INTO t VALUES (1)');
    await c.query('COMMIT');
    expect(drained.ran).toEqual(['BEGIN', "SELECT current_setting('transaction_read_only') AS ro", 'ROLLBACK']);
    expect(fresh.ran).toEqual(['BEGIN', "SELECT current_setting('transaction_read_only') AS ro", 'INSERT INTO t VALUES (1)', 'COMMIT']);
  });

  it("raises the session's token after an autocommit write and after COMMIT, not after reads", async () => {
    let lsn = 0x10;
    const p = new FakeClient('p0', (sql) => (sql.includes('pg_current_wal_insert_lsn') ? [{ lsn: `0/${(lsn++).toString(16).toUpperCase()}` }] : undefined));
    const h = fakeHost({ primaries: [() => p] });
    const session = new Session({} as never, null);
    const c = client(h, 'primary', session);
    await c.query('SELECT 1');
    expect(session.token).toBeNull();
    await c.query('INSERT INTO t VALUES (1)');
    expect(session.token).toBe('v1.3.0/10');
    await c.query('BEGIN');
    await c.query('UPDATE t SET v = 2');
    expect(session.token).toBe('v1.3.0/10');
    await c.query('COMMIT');
    expect(session.token).toBe('v1.3.0/11');
    expect(h.tokens).toHaveLength(2);
  });

  it('refuses a first argument that is no statement, naming it', async () => {
    const c = client(fakeHost());
    await expect(c.query(42 as unknown as string)).rejects.toThrow(/first argument must be SQL text.*got number/);
    await expect(c.query({ values: [] } as unknown as string)).rejects.toThrow(/got an object without a string text \(keys: values\)/);
  });

  it('release(err) destroys the connection; query() after release rejects', async () => {
    const p = new FakeClient('p0');
    const h = fakeHost({ primaries: [() => p] });
    const c = client(h);
    await c.query('SELECT 1');
    const err = new Error('broken');
    c.release(err);
    expect(p.released).toBe(err);
    await expect(c.query('SELECT 1')).rejects.toMatchObject({ code: 'released' });
  });

  it('forwards the connection events while bound, and the callback form', async () => {
    const p = new FakeClient('p0');
    const h = fakeHost({ primaries: [() => p] });
    const c = client(h);
    const notices: unknown[] = [];
    c.on('notice', (n) => notices.push(n));
    const result = await new Promise<pg.QueryResult | undefined>((resolve, reject) => c.query('SELECT 1', (err, res) => (err ? reject(err) : resolve(res))));
    expect(result?.rows).toEqual([]);
    p.emit('notice', 'hello');
    expect(notices).toEqual(['hello']);
    // No listener: a connection error is not re-emitted (it would throw).
    expect(() => p.emit('error', new Error('x'))).not.toThrow();
    c.release();
    p.emit('notice', 'after');
    expect(notices).toEqual(['hello']);
  });
});
