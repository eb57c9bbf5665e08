import { isAlive, type Sandbox, startSandbox } from '@pgreplica/sandbox';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';

// Kill, pause, resume, restart and stop on real servers. One sandbox for the
// file; each test leaves the node it broke streaming again.
describe('sandbox node faults', () => {
  let sandbox: Sandbox;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2, redis: true });
  });
  afterAll(async () => {
    await sandbox?.stop();
  });

  it('kill() crashes a replica at once (postmaster and backends), restart() brings it back streaming', async () => {
    const replica = sandbox.node('r1');
    const pid = replica.pid!;
    const client = new pg.Client(replica.connectionConfig);
    client.on('error', () => {});
    await client.connect();
    const backend = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;

    await replica.kill();

    expect(isAlive(pid)).toBe(false);
    expect(isAlive(backend)).toBe(false);
    expect(replica.running).toBe(false);
    await expect(replica.query('SELECT 1')).rejects.toThrow();
    await client.end().catch(() => {});

    await replica.restart();
    await sandbox.waitForStreaming();
    await sandbox.primary.query('CREATE TABLE IF NOT EXISTS t_after_kill (id int)');
    await sandbox.waitForReplay([replica]);
    expect(await replica.query("SELECT 1 FROM pg_class WHERE relname = 't_after_kill'")).toHaveLength(1);
  });

  it('pause() hangs a node so queries time out, resume() makes it answer again', async () => {
    const replica = sandbox.node('r2');
    const client = new pg.Client({ ...replica.connectionConfig, query_timeout: 1_000 });
    client.on('error', () => {});
    await client.connect();
    replica.pause();
    try {
      await expect(client.query('SELECT 1')).rejects.toThrow(/timeout/i);
      const fresh = new pg.Client({ ...replica.connectionConfig, connectionTimeoutMillis: 1_000 });
      fresh.on('error', () => {});
      await expect(fresh.connect()).rejects.toThrow();
      // The others are not affected.
      expect(await sandbox.node('r1').query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    } finally {
      replica.resume();
      await client.end().catch(() => {});
    }
    expect(await replica.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    await sandbox.waitForStreaming();
  });

  it('stop() shuts the primary down cleanly; start() resumes replication', async () => {
    await sandbox.primary.stop();
    expect(sandbox.primary.running).toBe(false);
    await expect(sandbox.primary.query('SELECT 1')).rejects.toThrow();
    // The replicas notice and keep serving reads meanwhile.
    expect(await sandbox.node('r1').query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    await sandbox.primary.start();
    await sandbox.waitForStreaming(60_000);
  });

  it('pauseReplay() stalls replay while WAL is still received', async () => {
    const replica = sandbox.node('r1');
    await replica.pauseReplay();
    try {
      await sandbox.primary.query('CREATE TABLE t_paused (id int)');
      const [{ lsn } = { lsn: '' }] = await sandbox.primary.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
      await eventually(async () => {
        const [row] = await replica.query<{ received: boolean }>('SELECT pg_last_wal_receive_lsn() >= $1::pg_lsn AS received', [lsn]);
        return row?.received === true;
      }, 10_000, 'WAL received');
      const [row] = await replica.query<{ replayed: boolean; paused: string }>(
        'SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS replayed, pg_get_wal_replay_pause_state() AS paused',
        [lsn],
      );
      expect(row).toEqual({ replayed: false, paused: 'paused' });
    } finally {
      await replica.resumeReplay();
    }
    await sandbox.waitForReplay([replica]);
  });

  it('redis kill, restart, pause and resume', async () => {
    const redis = sandbox.redis!;
    const pid = redis.pid!;
    await redis.kill();
    expect(isAlive(pid)).toBe(false);
    await redis.restart();
    expect(redis.running).toBe(true);
    redis.pause();
    redis.resume();
    await redis.restart();
    expect(redis.running).toBe(true);
  });
});
