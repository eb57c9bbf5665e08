import type { Monitor } from '@pgreplica/monitor';
import type { Router } from '@pgreplica/router-client';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';
import { missingOn, portMap, routerSees, startRouter, writeLoop } from './router-fixture.js';
import { clusterConfig, startWorker } from './worker-fixture.js';

const BUS_KEY = 'failover-test-bus-key-0123456789';

describe.each([
  ['killed with -9', 'kill'],
  ['hung (SIGSTOP)', 'pause'],
] as const)('failover: primary %s under a write loop through the router', (_label, fault) => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let worker: RemediationWorker;
  let db: Router;
  let bus: BusRecorder;
  /** A plain client (not through the router) connected to the primary before the fault. */
  let bystander: pg.Client;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    const config = clusterConfig(sandbox);
    monitor = await startMonitor(sandbox, { failover: config.failover, worker: config.worker }, BUS_KEY);
    worker = await startWorker(sandbox, {}, BUS_KEY);
    bus = await BusRecorder.start(sandbox.redis!.url, 'main', BUS_KEY);
    // query_timeout: a write in flight to a hung primary must end (as an unacknowledged failure), not hang the loop.
    db = await startRouter(sandbox, { busKey: BUS_KEY, maxWritePauseMs: 30_000, pool: { max: 4, query_timeout: 5_000 } });
    await routerSees(db, (r) => r.getTopology().topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
    await db.query('CREATE TABLE ledger (id int PRIMARY KEY)');
    bystander = new pg.Client(sandbox.primary.connectionConfig);
    bystander.on('error', () => {});
    await bystander.connect();
  });
  afterAll(async () => {
    if (fault === 'pause' && sandbox?.primary.running) sandbox.primary.resume();
    await bystander?.end().catch(() => {});
    await db?.close();
    await worker?.close();
    await monitor?.close();
    await bus?.close();
    await sandbox?.stop();
  });

  it('promotes a replica, repoints the other, and the router writes to the new primary; no read fails', async () => {
    const loop = writeLoop(db, sandbox);
    // Reads through the same router all along: the write path's own discovery of the new primary must not
    // erase what the bus said about the other replica's lag (it did: no replica qualified, reads failed).
    const reads = { ok: 0, failed: [] as string[], running: true };
    const reader = (async () => {
      while (reads.running) {
        try {
          await db.read('SELECT 1');
          reads.ok++;
        } catch (err) {
          reads.failed.push((err as Error).message);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const faultAt = Date.now();
    if (fault === 'kill') await sandbox.primary.kill();
    else sandbox.primary.pause();
    const changed = await bus.waitFor((e) => e.type === 'primary.changed', 60_000, 'primary.changed');
    const newPrimary = changed.type === 'primary.changed' ? changed.toId : '';
    expect(['r1', 'r2']).toContain(newPrimary);
    await eventually(() => loop.acked.some((a) => a.node === newPrimary), 30_000, 'a write on the new primary');
    const firstWrite = loop.acked.find((a) => a.node === newPrimary)!;
    await new Promise((resolve) => setTimeout(resolve, 500));
    await loop.stop();
    reads.running = false;
    await reader;

    const finished = await bus.waitFor((e) => e.type === 'failover.finished', 30_000, 'failover.finished');
    expect(finished).toMatchObject({ fromId: 'p1', toId: newPrimary, epoch: 2 });
    if (finished.type === 'failover.finished') {
      for (const phase of ['detect', 'decide', 'promote', 'publish', 'repoint'] as const) expect(finished.phasesMs[phase]).toBeGreaterThanOrEqual(0);
    }
    // The other replica streams from the new primary.
    const other = newPrimary === 'r1' ? 'r2' : 'r1';
    await eventually(async () => {
      const rows = await sandbox.node(newPrimary).query<{ application_name: string; state: string }>('SELECT application_name, state FROM pg_stat_replication');
      return rows.some((r) => r.application_name === other && r.state === 'streaming');
    }, 20_000, `${other} streaming from ${newPrimary}`);
    expect(db.getWriteTarget().nodeId).toBe(newPrimary);

    const ackedIds = loop.acked.map((a) => a.id);
    const lost = await missingOn(sandbox, newPrimary, ackedIds);
    const recoveryMs = firstWrite.at - faultAt;
    process.stderr.write(
      `[failover ${fault}] kill -> first successful write ${recoveryMs} ms; acknowledged writes ${ackedIds.length}, lost ${lost.length}; failed (unacknowledged) ${loop.failures.length}; lostBytes ${finished.type === 'failover.finished' ? finished.lostBytes : '?'}\n`,
    );
    expect(recoveryMs).toBeLessThan(30_000);
    if (fault === 'pause') {
      // A hung primary had shipped what it acknowledged: nothing may be missing.
      expect(lost).toEqual([]);
    }
    expect(reads.ok).toBeGreaterThan(0);
    expect(reads.failed.slice(0, 3)).toEqual([]);
    // After the failover the write loop reached the new primary: every write since is there.
    expect(await missingOn(sandbox, newPrimary, loop.acked.filter((a) => a.node === newPrimary).map((a) => a.id))).toEqual([]);
  });

  it('fences the old primary when it comes back: no client, router or not, can write there; the monitor reports it fenced', async () => {
    if (fault === 'kill') await sandbox.primary.start();
    else sandbox.primary.resume();
    // The worker fences it (no fence hook here): every database refuses connections, every session is cut.
    await bus.waitFor((e) => e.type === 'node.status' && e.nodeId === 'p1' && e.reason === 'fenced', 30_000, 'p1 reported fenced');
    const plain = new pg.Client(sandbox.primary.connectionConfig);
    plain.on('error', () => {});
    await expect(plain.connect()).rejects.toThrow(/not currently accepting connections/);
    // A session opened before the fault (a superuser, overriding any read-only default) is gone too.
    await expect(bystander.query('BEGIN READ WRITE; INSERT INTO ledger (id) VALUES (-1); COMMIT')).rejects.toThrow();
    const ports = portMap(sandbox);
    for (let i = 0; i < 20; i++) {
      const { rows } = await db.write<{ port: number }>('INSERT INTO ledger (id) VALUES ($1) RETURNING inet_server_port() AS port', [1_000_000 + i]);
      expect(ports.get(rows[0]!.port)).not.toBe('p1');
    }
    expect(db.getWriteTarget().nodeId).not.toBe('p1');
  });
});
