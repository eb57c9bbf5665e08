import { AuthorityStore } from '@pgreplica/bus';
import type { Monitor } from '@pgreplica/monitor';
import { busKeys } from '@pgreplica/protocol';
import type { Router } from '@pgreplica/router-client';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';
import { missingOn, routerSees, startRouter, writeLoop } from './router-fixture.js';
import { clusterConfig, startWorker } from './worker-fixture.js';

const BUS_KEY = 'issue-9-redis-reset-bus-key-0123';

// Issue 9, item 3. Before the fix the epoch and the term lived in Redis only:
// a Redis restarted empty started over at epoch 1 and term 1, the monitor
// announced the new primary at epoch 1, and a router that knew epoch 2 dropped
// every event of the new bus as older than what it had — stuck on its last
// topology for good.
describe('issue 9: epochs and terms never go backwards when Redis restarts empty', () => {
  let sandbox: Sandbox;
  let monitor: Monitor | undefined;
  let worker: RemediationWorker | undefined;
  let bus: BusRecorder;
  let db: Router;
  let redis: Redis;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    const config = clusterConfig(sandbox);
    monitor = await startMonitor(sandbox, { failover: config.failover, worker: config.worker }, BUS_KEY);
    worker = await startWorker(sandbox, {}, BUS_KEY);
    bus = await BusRecorder.start(sandbox.redis!.url, 'main', BUS_KEY);
    db = await startRouter(sandbox, { busKey: BUS_KEY, maxWritePauseMs: 20_000, pool: { max: 4, query_timeout: 5_000 } });
    await routerSees(db, (r) => r.getTopology().topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
    await db.write('CREATE TABLE ledger (id int PRIMARY KEY)');
    redis = new Redis(sandbox.redis!.url, { maxRetriesPerRequest: null });
    redis.on('error', () => {});
  });
  afterAll(async () => {
    redis?.disconnect();
    await db?.close();
    await worker?.close();
    await monitor?.close();
    await bus?.close();
    await sandbox?.stop();
  });

  it('after a failover, an empty Redis and a restarted monitor: epoch 2 and the right primary from the databases, a higher term, the router keeps writing', async () => {
    // A failover: epoch 2.
    const killedAt = Date.now();
    await sandbox.primary.kill();
    const finished = await bus.waitFor((e) => e.type === 'failover.finished', 60_000, 'failover.finished');
    const newPrimary = finished.type === 'failover.finished' ? finished.toId : '';
    expect(finished.epoch).toBe(2);
    await routerSees(db, (r) => r.getTopology().epoch === 2 && r.getWriteTarget().nodeId === newPrimary, 15_000, 'router at epoch 2');
    await worker!.close();
    worker = undefined;
    const termBefore = Math.max(...bus.events.map((e) => e.term));
    // A term that has lived for days: its seq far ahead of where a new one starts.
    await redis.set(busKeys('main').seq(termBefore), 1_000_000);
    await bus.waitFor((e) => e.seq > 1_000_000, 10_000, 'an event of the long-lived term');
    const failoverMs = Date.parse(finished.at) - killedAt;

    const loop = writeLoop(db, sandbox);
    const epochs = new Set<number>();
    const sampler = setInterval(() => epochs.add(db.getTopology().epoch), 50);
    try {
      await eventually(() => loop.acked.length > 10, 10_000, 'writes on the new primary');
      // Redis forgets everything, and the monitor starts from nothing too.
      await monitor!.close();
      monitor = undefined;
      await sandbox.redis!.stop();
      await sandbox.redis!.start();
      expect(await redis.dbsize()).toBe(0);
      const since = bus.events.length;
      monitor = await startMonitor(sandbox, {}, BUS_KEY);

      const snapshot = await bus.waitFor((e) => e.type === 'snapshot', 20_000, 'a snapshot from the new monitor', since);
      expect(snapshot.term).toBeGreaterThan(termBefore);
      expect(snapshot.epoch).toBe(2);
      expect(snapshot.type === 'snapshot' && snapshot.topology.primaryId).toBe(newPrimary);
      // The primary record on the bus, restored from the databases.
      const record = (await new AuthorityStore(redis, busKeys('main')).read()).record;
      expect(record).toMatchObject({ epoch: 2, primaryId: newPrimary });
      expect(Number(await redis.get(busKeys('main').epoch))).toBe(2);
      // Not a stuck router: it follows the new bus (fresh, at its term), still at epoch 2.
      const observedAt = snapshot.type === 'snapshot' ? snapshot.topology.observedAt : '';
      await routerSees(db, (r) => !r.getTopology().fallback && (r.getTopology().topology?.observedAt ?? '') >= observedAt, 15_000, 'router on the new bus');
      const before = loop.acked.length;
      await eventually(() => loop.acked.length > before + 20, 10_000, 'writes after the reset');
    } finally {
      clearInterval(sampler);
      await loop.stop();
    }
    expect([...epochs]).toEqual([2]);
    expect(db.getTopology().epoch).toBe(2);
    expect(db.getWriteTarget().nodeId).toBe(newPrimary);
    expect(new Set(loop.acked.map((a) => a.node))).toEqual(new Set([newPrimary]));
    expect(await missingOn(sandbox, newPrimary, loop.acked.map((a) => a.id))).toEqual([]);
    // Every event of the new bus was in order after the old one: the term only grew.
    expect(bus.outOfOrder).toEqual([]);
    expect(bus.rejected).toEqual([]);
    process.stderr.write(`[issue-9 redis reset] failover.finished ${failoverMs} ms after the kill; term ${termBefore} -> ${Math.max(...bus.events.map((e) => e.term))}, epoch 2 kept; writes ${loop.acked.length} acked, ${loop.failures.length} failed\n`);
  });
});
