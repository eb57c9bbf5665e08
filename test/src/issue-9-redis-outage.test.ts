import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Monitor } from '@pgreplica/monitor';
import { busKeys } from '@pgreplica/protocol';
import type { Router } from '@pgreplica/router-client';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';
import { BusRecorder, DOCUMENTED_MONITOR, startMonitor } from './monitor-fixture.js';
import { portMap, routerSees, startRouter } from './router-fixture.js';

const OUTAGE_MS = 60_000;
const WRITERS = 8;
const HEARTBEAT_MS = DOCUMENTED_MONITOR.monitor.heartbeatMs;

/**
 * The primary refuses writes (read-only, 25006) for `ms`: every write in that
 * time certainly did not run, is retried, and looks for the primary again.
 */
async function readOnlyBlip(sandbox: Sandbox, ms: number): Promise<void> {
  await sandbox.primary.query('ALTER SYSTEM SET default_transaction_read_only = on');
  await sandbox.primary.query('SELECT pg_reload_conf()');
  await new Promise((resolve) => setTimeout(resolve, ms));
  await sandbox.primary.query('ALTER SYSTEM RESET default_transaction_read_only');
  await sandbox.primary.query('SELECT pg_reload_conf()');
}

/** Counts the snapshot reads (`GET …:topology` by a client, not a script) Redis serves from now on. */
async function snapshotReads(sandbox: Sandbox): Promise<{ count: () => number; stop: () => void }> {
  const client = new Redis(sandbox.redis!.url, { lazyConnect: true });
  const monitor = await client.monitor();
  let count = 0;
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (source !== 'lua' && args[0]?.toLowerCase() === 'get' && args[1] === busKeys('main').topology) count++;
  });
  return {
    count: () => count,
    stop: () => {
      monitor.disconnect();
      client.disconnect();
    },
  };
}

/** `global.gc`, exposed at run time when the process was not started with --expose-gc. */
function collector(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/** Heap in use after a full collection, in MiB. */
function heapMiB(gc: () => void): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

// Issue 9, item 9. Before the fix a router re-read the bus on every failed
// write and gap, each read queued on a connection that waited for Redis
// forever, and the router went stale and back at every heartbeat. Here: a
// minute without Redis under load costs no call, no memory that stays, and
// the router is fresh again about one heartbeat after Redis returns.
describe('issue 9: a router under load through a long Redis outage', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let bus: BusRecorder;
  let db: Router;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 1 });
    bus = await BusRecorder.start(sandbox.redis!.url);
    monitor = await startMonitor(sandbox, DOCUMENTED_MONITOR);
    db = await startRouter(sandbox, { staleAfterMs: undefined, maxWritePauseMs: 10_000, pool: { max: WRITERS, query_timeout: 5_000 } });
    await routerSees(db, (r) => r.getTopology().topology?.nodes.every((n) => n.status === 'healthy') === true, 20_000, 'all healthy');
    await db.write('CREATE TABLE ledger (id int PRIMARY KEY)');
  });
  afterAll(async () => {
    await db?.close();
    await monitor?.close();
    await bus?.close();
    await sandbox?.stop();
  });

  it('keeps reads and writes working with a flat heap for a minute without Redis, and is fresh again about a heartbeat after it returns', async () => {
    const gc = collector();
    const ports = portMap(sandbox);
    // Counters only: the loops keep nothing per call, so the heap shows what the router keeps.
    const reads = { ok: 0, failed: [] as string[] };
    const writes = { ok: 0, failed: [] as string[], onPrimary: true };
    let running = true;
    const readLoop = async () => {
      while (running) {
        try {
          await db.read('SELECT 1');
          reads.ok++;
        } catch (err) {
          reads.failed.push((err as Error).message);
        }
      }
    };
    let nextId = 0;
    const writeLoop = async () => {
      while (running) {
        try {
          const { rows } = await db.write<{ port: number }>('INSERT INTO ledger (id) VALUES ($1) RETURNING inet_server_port() AS port', [++nextId]);
          writes.ok++;
          if (ports.get(rows[0]!.port) !== 'p1') writes.onPrimary = false;
        } catch (err) {
          writes.failed.push((err as Error).message);
        }
      }
    };
    const loops = [readLoop(), readLoop(), ...Array.from({ length: WRITERS }, writeLoop)];
    const fallbacks: { at: number; active: boolean }[] = [];
    db.on('fallback', (s) => fallbacks.push({ at: Date.now(), active: s.active }));
    let restartedAt = 0;
    const heap: number[] = [];
    try {
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      const before = { reads: reads.ok, writes: writes.ok };
      heap.push(heapMiB(gc));
      await sandbox.redis!.stop();
      const stoppedAt = Date.now();
      // Sample the heap through the outage (after a warm-up: the fallback's probes open their connections).
      let blip: Promise<void> | undefined;
      while (Date.now() - stoppedAt < OUTAGE_MS) {
        await new Promise((resolve) => setTimeout(resolve, 10_000));
        heap.push(heapMiB(gc));
        if (heap.length === 3) blip = readOnlyBlip(sandbox, 4_000);
      }
      await blip;
      const during = { reads: reads.ok - before.reads, writes: writes.ok - before.writes };
      expect(db.getTopology().fallback).toBe(true);
      await sandbox.redis!.start();
      restartedAt = Date.now();
      const lookups = await snapshotReads(sandbox);
      await routerSees(db, (r) => !r.getTopology().fallback, 4 * HEARTBEAT_MS, 'the router fresh again');
      const freshMs = Date.now() - restartedAt;
      // What piled up while Redis was away would reach it now: the snapshot reads it gets.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      lookups.stop();
      const gets = lookups.count();
      await eventually(() => writes.ok > before.writes + during.writes + 100, 10_000, 'writes after the outage');
      process.stderr.write(
        `[issue-9 redis outage] ${OUTAGE_MS / 1000} s without Redis: ${during.reads} reads, ${during.writes} writes, ${reads.failed.length} failed reads, ${writes.failed.length} failed writes; ` +
          `heap MiB ${heap.map((h) => h.toFixed(1)).join(' ')}; fresh ${freshMs} ms after Redis returned, then ${gets} snapshot reads from clients; fallback events ${fallbacks.map((f) => `${f.active ? 'on' : 'off'}@${f.at - stoppedAt}`).join(' ')}\n`,
      );
      expect(during.reads).toBeGreaterThan(1_000);
      expect(during.writes).toBeGreaterThan(1_000);
      // About one heartbeat (the monitor reconnects and republishes; the router resubscribes), bounded generously.
      expect(freshMs).toBeLessThan(2 * HEARTBEAT_MS);
      // The writes refused during the blip each looked for the primary again: none of those looks waited for Redis.
      expect(gets).toBeLessThanOrEqual(2);
    } finally {
      running = false;
      await Promise.all(loops);
    }
    expect(reads.failed).toEqual([]);
    expect(writes.failed).toEqual([]);
    expect(writes.onPrimary).toBe(true);
    // Stale, then fresh: once each, no flapping.
    expect(fallbacks.map((f) => f.active)).toEqual([true, false]);
    // Flat: what the outage costs is not kept (a warm-up's worth of slack, nothing proportional to time).
    const afterWarmUp = heap.slice(1);
    expect(Math.max(...afterWarmUp) - Math.min(...afterWarmUp)).toBeLessThan(8);
  });
});
