import type { Monitor } from '@pgreplica/monitor';
import { busKeys, createEvent, encodeEvent } from '@pgreplica/protocol';
import { FallbackBudgetExceededError, type Router } from '@pgreplica/router-client';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';
import { busTopology, portMap, routerSees, startRouter } from './router-fixture.js';
import { TcpProxy } from './tcp-proxy.js';

describe('router: replica failures', () => {
  let sandbox: Sandbox;
  let proxy: TcpProxy;
  let monitor: Monitor;
  let bus: BusRecorder;
  let db: Router;
  let ports: Map<number, string>;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    ports = portMap(sandbox);
    // r2 is reached through a proxy the test can slow down.
    proxy = await TcpProxy.start(sandbox.node('r2').port);
    bus = await BusRecorder.start(sandbox.redis!.url);
    monitor = await startMonitor(sandbox, {
      nodes: sandbox.nodes.map((n) => ({ id: n.id, host: n.host, port: n.id === 'r2' ? proxy.port : n.port, priority: 1 })),
      database: { user: 'postgres', connectTimeoutMs: 1_000, statementTimeoutMs: 3_000 },
    });
    db = await startRouter(sandbox, { fallbackBudget: { ratePerSec: 20, burst: 5, waitMs: 20 } });
    await routerSees(db, (r) => r.getTopology().topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
  });
  afterEach(() => {
    proxy.delayMs = 0;
  });
  afterAll(async () => {
    await db?.close();
    await monitor?.close();
    await bus?.close();
    await proxy?.close();
    await sandbox?.stop();
  });

  const servedBy = async (sql = 'SELECT inet_server_port() AS port') => {
    const { rows } = await db.read<{ port: number }>(sql);
    return ports.get(rows[0]!.port) ?? 'r2'; // r2's port as seen through the proxy is still r2's
  };

  it('a replica killed mid-load costs no failed read; it gets none after the monitor marks it, and reads again after it recovers', async () => {
    const since = bus.events.length;
    let failed = 0;
    let done = false;
    const log: { at: number; node: string }[] = [];
    const worker = async () => {
      while (!done) {
        try {
          log.push({ at: Date.now(), node: await servedBy() });
        } catch {
          failed++;
        }
      }
    };
    const workers = Array.from({ length: 4 }, worker);
    await new Promise((resolve) => setTimeout(resolve, 500));
    await sandbox.node('r1').kill();
    const marked = await bus.waitFor((e) => e.type === 'node.status' && e.nodeId === 'r1' && e.to === 'unhealthy', 15_000, 'r1 unhealthy', since);
    await routerSees(db, (r) => r.getTopology().topology?.nodes.find((n) => n.id === 'r1')?.status === 'unhealthy', 5_000, 'router sees r1 unhealthy');
    const seenAt = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    done = true;
    await Promise.all(workers);
    expect(failed).toBe(0);
    expect(log.filter((l) => l.at > seenAt && l.node === 'r1')).toEqual([]);
    expect(Date.parse(marked.at)).toBeLessThanOrEqual(seenAt);

    await sandbox.node('r1').restart();
    await routerSees(db, (r) => r.getTopology().topology?.nodes.find((n) => n.id === 'r1')?.status === 'healthy', 20_000, 'r1 healthy');
    await eventually(async () => (await servedBy()) === 'r1', 15_000, 'a read on r1 again');
  });

  it('a replica slowed artificially loses most of its reads, yet keeps a trickle', async () => {
    proxy.delayMs = 25;
    const counts = new Map<string, number>();
    const until = Date.now() + 4_000;
    const worker = async () => {
      while (Date.now() < until) {
        const node = await servedBy();
        counts.set(node, (counts.get(node) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: 4 }, worker));
    const total = [...counts.values()].reduce((a, b) => a + b, 0);
    const slowShare = (counts.get('r2') ?? 0) / total;
    process.stderr.write(`[router-faults] slow replica r2 served ${(slowShare * 100).toFixed(1)}% of ${total} reads\n`);
    expect(slowShare).toBeLessThan(0.2);
    expect(counts.get('r2') ?? 0).toBeGreaterThan(0);
  });

  it('with every replica down, reads on the primary stay within the fallback budget and the rest fail fast with a typed error', async () => {
    await sandbox.node('r1').kill();
    proxy.cutOff();
    try {
      await routerSees(
        db,
        (r) => ['r1', 'r2'].every((id) => r.getTopology().topology?.nodes.find((n) => n.id === id)?.status === 'unhealthy'),
        20_000,
        'both replicas unhealthy',
      );
      let ok = 0;
      let budget = 0;
      const started = Date.now();
      await Promise.all(
        Array.from({ length: 200 }, async () => {
          try {
            expect(await servedBy()).toBe('p1');
            ok++;
          } catch (err) {
            if (err instanceof FallbackBudgetExceededError) budget++;
            else throw err;
          }
        }),
      );
      const seconds = (Date.now() - started) / 1000;
      // Burst 5 + 20/s: the primary took only what the budget allows.
      expect(ok).toBeLessThanOrEqual(5 + Math.ceil(20 * seconds) + 1);
      expect(ok).toBeGreaterThan(0);
      expect(budget).toBe(200 - ok);
      expect(new FallbackBudgetExceededError('x').code).toBe('fallback-budget');
    } finally {
      proxy.restore();
      await sandbox.node('r1').restart();
    }
  });
});

describe('router: writes across a change of primary', () => {
  let sandbox: Sandbox;
  let db: Router;
  let redis: Redis;
  let seq = 0;
  const keys = busKeys('main');

  const publishSnapshot = async (epoch: number, primaryId: string) => {
    const event = encodeEvent(createEvent('snapshot', { topology: busTopology(sandbox, epoch, primaryId) }, { cluster: 'main', term: 1, seq: ++seq, epoch }));
    await redis.set(keys.topology, event);
    await redis.publish(keys.events, event);
  };

  beforeAll(async () => {
    // No monitor: the test plays the bus, to place the change of primary exactly.
    sandbox = await startSandbox({ replicas: 1 });
    redis = new Redis(sandbox.redis!.url);
    await publishSnapshot(1, 'p1');
    db = await startRouter(sandbox, { maxWritePauseMs: 10_000 });
    await db.query('CREATE TABLE w (id int)');
  });
  afterAll(async () => {
    await db?.close();
    await redis?.quit();
    await sandbox?.stop();
  });

  it('retries a write refused with 25006 by the demoted primary on the new one; the caller sees success', async () => {
    const ports = portMap(sandbox);
    // Demote p1 the way a switchover does (read-only), promote r1; the bus learns of it 1 s later.
    await sandbox.primary.query('ALTER SYSTEM SET default_transaction_read_only = on');
    await sandbox.primary.query('SELECT pg_reload_conf()');
    await sandbox.node('r1').promote();
    setTimeout(() => void publishSnapshot(2, 'r1'), 1_000);
    const result = await db.write<{ port: number }>('INSERT INTO w VALUES (1) RETURNING inet_server_port() AS port');
    expect(ports.get(result.rows[0]!.port)).toBe('r1');
    expect(result.token).toMatch(/^v1\.2\./);
    const retries = await db.metrics.registry.getSingleMetricAsString('pgreplica_router_write_retries_total');
    expect(retries).toMatch(/cause="read-only"\} [1-9]/);
    // The row exists once, on the new primary.
    expect(await sandbox.node('r1').query('SELECT count(*)::int AS n FROM w')).toEqual([{ n: 1 }]);
  });

  it('refuses to write to a server in recovery even if the bus still names it (client-side fencing)', async () => {
    // A stale/forged-but-unsigned bus: names the old primary again with a higher epoch, but it is read-only,
    // and another node in recovery is named: fencing must refuse it.
    await sandbox.primary.query('ALTER SYSTEM RESET default_transaction_read_only');
    await sandbox.primary.query('SELECT pg_reload_conf()');
    // Make p1 a server in recovery: stop, add standby.signal, start (it follows nobody, but is in recovery).
    await sandbox.primary.stop();
    const { writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    writeFileSync(join(sandbox.primary.dataDir, 'standby.signal'), '');
    await sandbox.primary.start();
    expect(await sandbox.primary.isInRecovery()).toBe(true);
    await publishSnapshot(3, 'p1');
    await routerSees(db, (r) => r.getWriteTarget().nodeId === 'p1', 5_000, 'bus names p1');
    setTimeout(() => void publishSnapshot(4, 'r1'), 1_000);
    const ports = portMap(sandbox);
    const result = await db.write<{ port: number }>('INSERT INTO w VALUES (2) RETURNING inet_server_port() AS port');
    expect(ports.get(result.rows[0]!.port)).toBe('r1');
    const retries = await db.metrics.registry.getSingleMetricAsString('pgreplica_router_write_retries_total');
    expect(retries).toMatch(/cause="fenced"\} [1-9]/);
  });
});
