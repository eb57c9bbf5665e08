import type { NodeState } from '@pgreplica/protocol';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { isConnectionError, isPoolWaitTimeout } from './errors.js';
import { Executor, queryThenLsn } from './executor.js';
import { RouterMetrics } from './metrics.js';
import type { PoolSet } from './pool-set.js';

const node: NodeState = {
  id: 'r1', host: '127.0.0.1', port: 1, role: 'replica', status: 'healthy', reason: 'ok', priority: 0, weight: 1, tags: [],
  lagBytes: 0, lagMs: 0, replayLsn: null, receiveLsn: null, timeline: 1, lastCheckAt: null, since: '', consecutiveFailures: 0,
};
const silent = { debug() {}, info() {}, warn() {}, error() {} };

/** A pg.Client stand-in: connects at once; `answer` decides each query's outcome. */
function fakeClient(answer: (sql: string) => Error | pg.QueryResult) {
  return class FakeClient {
    readonly queries: string[] = [];
    on() {}
    removeListener() {}
    connect(cb: (err: Error | null) => void) {
      process.nextTick(() => cb(null));
    }
    query(sql: string, _values?: unknown, cb?: (err: Error | null, result?: pg.QueryResult) => void) {
      const out = answer(typeof sql === 'string' ? sql : (sql as { text: string }).text);
      if (!cb) return out instanceof Error ? Promise.reject(out) : Promise.resolve(out);
      process.nextTick(() => (out instanceof Error ? cb(out) : cb(null, out)));
      return undefined;
    }
    end(cb?: () => void) {
      cb?.();
    }
  };
}

const result = (rows: Record<string, unknown>[]): pg.QueryResult => ({ rows, rowCount: rows.length, command: 'SELECT', oid: 0, fields: [] });

describe('pool saturation is not a node failure', () => {
  it("pg-pool's wait for a free client times out with an error that is not a connection error", async () => {
    const pool = new pg.Pool({ Client: fakeClient(() => result([])) as never, max: 1, connectionTimeoutMillis: 20 });
    const held = await pool.connect();
    const err = await pool.connect().catch((e: unknown) => e);
    held.release();
    await pool.end();
    expect((err as Error).message).toBe('timeout exceeded when trying to connect');
    expect(isPoolWaitTimeout(err)).toBe(true);
    expect(isConnectionError(err)).toBe(false);
    // A connection attempt that times out is the node's failure.
    expect(isConnectionError(new Error('Connection terminated due to connection timeout'))).toBe(true);
  });

  it('a read that waited in vain for a pooled client neither bans the replica nor counts against it', async () => {
    const pool = new pg.Pool({ Client: fakeClient(() => result([])) as never, max: 1, connectionTimeoutMillis: 20 });
    const executor = new Executor({ pool: () => pool } as unknown as PoolSet, new RouterMetrics(undefined, () => 0, () => false), silent, { baseMs: 500, maxMs: 30_000 });
    const held = await pool.connect();
    const err = await executor.read(node, 'replica', 'replica:lag-ok', 'SELECT 1', undefined).catch((e: unknown) => e);
    held.release();
    await pool.end();
    expect(isPoolWaitTimeout(err)).toBe(true);
    expect(executor.statsOf('r1').isBanned(Date.now())).toBe(false);
    expect(executor.statsOf('r1').errorScore(Date.now())).toBe(0);
  });

  it('a read whose connection fails bans the replica', async () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    const pool = new pg.Pool({ Client: fakeClient(() => refused) as never, max: 1 });
    const executor = new Executor({ pool: () => pool } as unknown as PoolSet, new RouterMetrics(undefined, () => 0, () => false), silent, { baseMs: 500, maxMs: 30_000 });
    await expect(executor.read(node, 'replica', 'replica:lag-ok', 'SELECT 1', undefined)).rejects.toBe(refused);
    await pool.end();
    expect(executor.statsOf('r1').isBanned(Date.now())).toBe(true);
  });
});

describe('queryThenLsn: a committed statement never throws', () => {
  it('returns the result and a null position when the position query fails after the statement', async () => {
    const terminated = new Error('Connection terminated unexpectedly');
    const client = new (fakeClient((sql) => (sql.includes('pg_current_wal_insert_lsn') ? terminated : result([{ id: 1 }]))))();
    const out = await queryThenLsn(Object.assign(client, { release() {} }) as unknown as pg.PoolClient, 'INSERT INTO t VALUES (1) RETURNING id');
    expect(out.result.rows).toEqual([{ id: 1 }]);
    expect(out.lsn).toBeNull();
    expect(out.broken).toBe(terminated);
  });

  it("rejects with the statement's own error", async () => {
    const refused = Object.assign(new Error('duplicate key'), { code: '23505' });
    const client = new (fakeClient((sql) => (sql.includes('pg_current_wal_insert_lsn') ? result([{ lsn: '0/1' }]) : refused)))();
    await expect(queryThenLsn(Object.assign(client, { release() {} }) as unknown as pg.PoolClient, 'INSERT INTO t VALUES (1)')).rejects.toBe(refused);
  });
});

describe('RouterMetrics', () => {
  it('exports the plain counters and durations through collect()', async () => {
    const metrics = new RouterMetrics(undefined, () => 0, () => false);
    metrics.countQuery('r1', 'replica', 'ok', 'replica:lag-ok');
    metrics.countQuery('r1', 'replica', 'ok', 'replica:lag-ok');
    metrics.countQuery('p1', 'primary', 'sql-error', 'primary:write');
    metrics.observeDuration('replica', 0.0007);
    metrics.observeDuration('replica', 0.2);
    metrics.countFallback('primary:lag');
    const text = await metrics.registry.metrics();
    expect(text).toContain('pgreplica_router_queries_total{node="r1",role="replica",outcome="ok",reason="replica:lag-ok"} 2');
    expect(text).toContain('pgreplica_router_queries_total{node="p1",role="primary",outcome="sql-error",reason="primary:write"} 1');
    expect(text).toContain('pgreplica_router_query_duration_seconds_bucket{le="0.0005",role="replica"} 0');
    expect(text).toContain('pgreplica_router_query_duration_seconds_bucket{le="0.001",role="replica"} 1');
    expect(text).toContain('pgreplica_router_query_duration_seconds_bucket{le="+Inf",role="replica"} 2');
    expect(text).toContain('pgreplica_router_query_duration_seconds_count{role="replica"} 2');
    expect(text).toContain('pgreplica_router_fallbacks_total{reason="primary:lag"} 1');
    // A second scrape reports the same totals, not twice them.
    expect(await metrics.registry.metrics()).toContain('reason="replica:lag-ok"} 2');
  });
});
