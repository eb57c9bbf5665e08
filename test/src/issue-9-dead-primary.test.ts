import type { Monitor } from '@pgreplica/monitor';
import { type Router, RouterError } from '@pgreplica/router-client';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BusRecorder, DOCUMENTED_MONITOR, startMonitor } from './monitor-fixture.js';
import { portMap, routerSees, startRouter, writeLoop } from './router-fixture.js';

const OUTAGE_MS = 60_000;

// Issue 9, item 0: a primary killed with no worker to replace it. Its
// replicas are stale (degraded, lag growing since the primary was last seen),
// not unhealthy: reads whose bound they still meet keep working, and a read
// they cannot serve fails fast with `primary-down` instead of trying the dead
// primary. Before the fix the replicas went unhealthy (wal-receiver-down)
// after 10 s and the router, whose 5 s staleness bound equalled the
// monitor's heartbeat, also fell back to the primary: nearly every read failed.
describe('issue 9: a dead primary with no failover', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let bus: BusRecorder;
  let db: Router;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    bus = await BusRecorder.start(sandbox.redis!.url);
    monitor = await startMonitor(sandbox, DOCUMENTED_MONITOR);
    // The router's documented defaults too: no staleAfterMs (derived from the monitor's heartbeat).
    db = await startRouter(sandbox, { staleAfterMs: undefined, maxWritePauseMs: 2_000 });
    await routerSees(db, (r) => r.getTopology().topology?.nodes.every((n) => n.status === 'healthy') === true, 20_000, 'all healthy');
    await db.write('CREATE TABLE ledger (id int PRIMARY KEY)');
  });
  afterAll(async () => {
    await db?.close();
    await monitor?.close();
    await bus?.close();
    await sandbox?.stop();
  });

  it('costs no read a stale replica can serve, and fails a read it cannot serve fast with primary-down', async () => {
    const ports = portMap(sandbox);
    const fallbacks: boolean[] = [];
    db.on('fallback', (s) => fallbacks.push(s.active));
    const tolerant = { ok: 0, failed: [] as string[], byNode: new Map<string, number>() };
    const strict: { at: number; ms: number; outcome: string }[] = [];
    let running = true;
    let killedAt = Number.POSITIVE_INFINITY;
    const readTolerant = async () => {
      while (running) {
        try {
          const { rows } = await db.read<{ port: number }>('SELECT inet_server_port() AS port', [], { maxLagMs: 120_000 });
          const node = ports.get(rows[0]!.port) ?? '?';
          tolerant.ok++;
          if (Date.now() > killedAt) tolerant.byNode.set(node, (tolerant.byNode.get(node) ?? 0) + 1);
        } catch (err) {
          tolerant.failed.push(`${(err as RouterError).code ?? ''} ${(err as Error).message}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    };
    const readStrict = async () => {
      while (running) {
        const started = Date.now();
        let outcome: string;
        try {
          const { rows } = await db.read<{ port: number }>('SELECT inet_server_port() AS port', [], { maxLagMs: 2_000 });
          outcome = ports.get(rows[0]!.port) ?? '?';
        } catch (err) {
          outcome = err instanceof RouterError ? err.code : `error: ${(err as Error).message}`;
        }
        strict.push({ at: started, ms: Date.now() - started, outcome });
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    // A bound the replicas pass during the outage, between two snapshots: the router's view of a stale
    // replica's lag grows by itself, so it stops serving these once they are further behind.
    const servedWithin20s: number[] = [];
    const readMedium = async () => {
      while (running) {
        const started = Date.now();
        try {
          const { rows } = await db.read<{ port: number }>('SELECT inet_server_port() AS port', [], { maxLagMs: 20_000 });
          if (ports.get(rows[0]!.port) !== 'p1') servedWithin20s.push(started);
        } catch {
          // primary-down once no replica qualifies
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    const readers = [readTolerant(), readTolerant(), readTolerant(), readStrict(), readMedium()];
    const writes = writeLoop(db, sandbox);
    await new Promise((resolve) => setTimeout(resolve, 1_000));

    killedAt = Date.now();
    await sandbox.primary.kill();
    // The router sees the primary down and both replicas further behind than the strict bound.
    await routerSees(
      db,
      (r) => {
        const nodes = r.getTopology().topology?.nodes ?? [];
        const p1 = nodes.find((n) => n.id === 'p1');
        return p1?.status === 'unhealthy' && nodes.filter((n) => n.role === 'replica').every((n) => n.status === 'degraded' && n.reason === 'stale' && (n.lagMs ?? 0) > 2_000);
      },
      20_000,
      'p1 down, replicas stale beyond 2 s',
    );
    const staleSeenAt = Date.now();
    await new Promise((resolve) => setTimeout(resolve, killedAt + OUTAGE_MS - Date.now()));
    running = false;
    await Promise.all(readers);
    await writes.stop();

    const replicas = db.getTopology().topology!.nodes.filter((n) => n.role === 'replica');
    const afterStale = strict.filter((s) => s.at > staleSeenAt);
    const slowest = Math.max(...afterStale.map((s) => s.ms));
    const lastWithin20s = Math.max(...servedWithin20s);
    process.stderr.write(
      `[issue-9 dead primary] ${OUTAGE_MS / 1000} s: tolerant reads ${tolerant.ok} ok (${[...tolerant.byNode].map(([n, c]) => `${n} ${c}`).join(', ')}), ${tolerant.failed.length} failed; ` +
        `strict reads after stale: ${afterStale.length}, slowest ${slowest} ms; replica lag at the end ${replicas.map((n) => `${n.id} ${n.lagMs} ms`).join(', ')}; ` +
        `writes acked before the kill ${writes.acked.length}, failed after it ${writes.failures.length}; stale seen ${staleSeenAt - killedAt} ms after the kill; ` +
        `the last read within 20 s of lag on a replica ${lastWithin20s - killedAt} ms after the kill\n`,
    );
    // No read a stale replica can serve failed, and the router never went to its fallback.
    expect(tolerant.failed).toEqual([]);
    expect(tolerant.byNode.get('p1') ?? 0).toBe(0);
    expect(tolerant.byNode.size).toBeGreaterThan(0);
    expect(fallbacks).toEqual([]);
    // Still stale, not unhealthy, a minute later: lag grew with the time since the primary was last seen.
    for (const n of replicas) {
      expect(n).toMatchObject({ status: 'degraded', reason: 'stale' });
      expect(n.lagMs).toBeGreaterThan(OUTAGE_MS - 15_000);
      expect(n.lagMs).toBeLessThan(120_000);
    }
    // Not served once the replicas were 20 s behind, though the last snapshot said less (they last saw the primary before the kill).
    expect(lastWithin20s - killedAt).toBeGreaterThan(15_000);
    expect(lastWithin20s - killedAt).toBeLessThan(20_500);
    // A read no replica may serve fails at once with primary-down: never sent to the dead primary.
    expect(afterStale.length).toBeGreaterThan(100);
    expect(new Set(afterStale.map((s) => s.outcome))).toEqual(new Set(['primary-down']));
    expect(slowest).toBeLessThan(1_000);
    // Writes had nowhere to go (no worker): they failed, none was acknowledged after the kill.
    expect(writes.acked.filter((a) => a.at > killedAt + 1_000)).toEqual([]);
    expect(writes.failures.length).toBeGreaterThan(0);
  });
});
