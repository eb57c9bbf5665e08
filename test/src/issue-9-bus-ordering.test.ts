import { BusPublisher } from '@pgreplica/bus';
import type { Monitor } from '@pgreplica/monitor';
import { type BusEvent, busKeys, createEvent, encodeEvent, parseEvent } from '@pgreplica/protocol';
import { createRouter, type Router } from '@pgreplica/router-client';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BusRecorder, startMonitor } from './monitor-fixture.js';
import { busTopology, routerSees } from './router-fixture.js';
import { TcpProxy } from './tcp-proxy.js';

const BUS_KEY = 'issue-9-ordering-bus-key-0123456';
const PER_LOOP = 150;

/** Events of a stream, oldest first. */
async function streamEvents(redis: Redis, cluster: string): Promise<BusEvent[]> {
  const entries = await redis.xrange(busKeys(cluster).stream, '-', '+');
  return entries.flatMap(([, fields]) => {
    const parsed = parseEvent(fields[fields.indexOf('event') + 1]!, { cluster, key: BUS_KEY });
    return parsed.ok ? [parsed.event] : [];
  });
}

/** Positions within one term that skip a seq, as "term:from->to". */
function gapsIn(events: readonly BusEvent[]): string[] {
  return events.slice(1).flatMap((e, i) => {
    const prev = events[i]!;
    return e.term === prev.term && e.seq !== prev.seq + 1 ? [`${e.term}:${prev.seq}->${e.seq}`] : [];
  });
}

// Issue 9, item 2. Before the fix a publisher took its seq (INCR) in one
// round trip and published in another: two publishers racing (the monitor
// leader and the worker) published out of order, and routers dropped the
// late one as stale. On a gap a router reloaded the stored snapshot, which
// never holds an event published after it: what it missed stayed missed.
describe('issue 9: bus ordering and gap repair', () => {
  let sandbox: Sandbox;
  let redis: Redis;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    redis = new Redis(sandbox.redis!.url);
    redis.on('error', () => {});
  });
  afterAll(async () => {
    await redis?.quit();
    await sandbox?.stop();
  });

  it('the monitor leader and two unfenced publishers racing: every event once, in (term, seq) order, no gap', async () => {
    const recorder = await BusRecorder.start(sandbox.redis!.url, 'main', BUS_KEY);
    // The leader publishes a snapshot every round (100 ms) while the others race it.
    const monitor: Monitor = await startMonitor(sandbox, { monitor: { probeIntervalMs: 100, heartbeatMs: 100 } }, BUS_KEY);
    try {
      await recorder.waitFor((e) => e.type === 'snapshot', 15_000, 'a snapshot from the leader');
      // Each on its own connection, as the worker and the CLI are: their commands interleave with the leader's in Redis.
      const connections = [new Redis(sandbox.redis!.url), new Redis(sandbox.redis!.url)];
      const publishers = connections.map(
        (conn, i) => new BusPublisher({ redis: conn, keys: busKeys('main'), cluster: 'main', instanceId: `worker-${i}`, key: BUS_KEY, streamMaxLen: 10_000, fenced: false }),
      );
      const published: BusEvent[] = [];
      const loop = async (publisher: BusPublisher, name: string) => {
        for (let i = 0; i < PER_LOOP; i++) {
          const { outcome, event } = await publisher.publish('slot.dropped', { slotName: `${name}_${i}`, dryRun: true, retainedBytesBefore: i, retainedBytesAfter: null }, 1);
          expect(outcome).toBe('published');
          published.push(event);
          // A burst (two callers on each publisher, as concurrent jobs would be), then spread
          // over a few seconds, so the leader's snapshots (one per 100 ms round) race them too.
          if (i >= PER_LOOP / 2) await new Promise((resolve) => setTimeout(resolve, Math.random() * 40));
        }
      };
      try {
        await Promise.all(publishers.flatMap((p, i) => [loop(p, `p${i}a`), loop(p, `p${i}b`)]));
      } finally {
        for (const conn of connections) conn.disconnect();
      }
      const last = published.reduce((a, b) => (a.seq > b.seq ? a : b));
      await recorder.waitFor((e) => e.term === last.term && e.seq >= last.seq, 5_000, 'the last racing event');
      // One more leader snapshot after the race, so the recorder holds everything up to it.
      const end = recorder.events.length;
      await recorder.waitFor((e) => e.type === 'snapshot', 5_000, 'a snapshot after the race', end);

      const seen = recorder.events;
      const raced = seen.filter((e) => e.type === 'slot.dropped');
      const fromLeader = seen.filter((e) => e.type === 'snapshot' && e.term === last.term);
      process.stderr.write(`[issue-9 ordering] ${published.length} racing events and ${fromLeader.length} leader snapshots in term ${last.term}; out of order ${recorder.outOfOrder.length}\n`);
      expect(recorder.rejected).toEqual([]);
      expect(recorder.outOfOrder).toEqual([]);
      expect(gapsIn(seen)).toEqual([]);
      expect(fromLeader.length).toBeGreaterThan(10);
      // Every racing event exactly once, with the position its publisher was told.
      expect(raced.map((e) => `${e.term}:${e.seq}:${e.type === 'slot.dropped' ? e.slotName : ''}`).sort()).toEqual(
        published.map((e) => `${e.term}:${e.seq}:${e.type === 'slot.dropped' ? e.slotName : ''}`).sort(),
      );
      // The stream holds what the channel carried, in the same order.
      const stream = await streamEvents(redis, 'main');
      const key = (e: BusEvent) => `${e.term}:${e.seq}`;
      expect(stream.map(key).filter((k) => seen.some((e) => key(e) === k))).toEqual(seen.map(key));
      expect(gapsIn(stream)).toEqual([]);
    } finally {
      await monitor.close();
      await recorder.close();
    }
  });

  it('a router that missed events catches up from the stream, including an event newer than the stored snapshot', async () => {
    // Its own cluster name and no monitor: the test plays the bus.
    const cluster = 'gaps';
    const keys = busKeys(cluster);
    const publisher = new BusPublisher({ redis, keys, cluster, instanceId: 'test', key: BUS_KEY, streamMaxLen: 1_000, fenced: false });
    await redis.set(keys.term, 3);
    const healthy = busTopology(sandbox, 1, 'p1', {}, cluster);
    await publisher.publish('snapshot', { topology: { ...healthy, heartbeatMs: 60_000 } }, 1);
    // The router reaches Redis through a proxy the test can cut.
    const proxy = await TcpProxy.start(sandbox.redis!.port);
    const db: Router = createRouter({
      cluster,
      redis: `redis://127.0.0.1:${proxy.port}`,
      busKey: BUS_KEY,
      connection: { user: 'postgres', password: sandbox.primary.connectionConfig.password as string, database: 'postgres' },
      functionCatalog: false,
    });
    db.on('error', () => {});
    try {
      await db.ready();
      const node = (id: string) => db.getTopology().topology?.nodes.find((n) => n.id === id);
      expect(node('r1')?.status).toBe('healthy');

      // Missed: r1 went degraded. In the stream, never delivered on the channel, and not in the stored snapshot.
      const r1 = { ...healthy.nodes.find((n) => n.id === 'r1')!, status: 'degraded' as const, reason: 'lagging' as const, lagMs: 7_000 };
      const missed = createEvent('node.status', { nodeId: 'r1', from: 'healthy', to: 'degraded', reason: 'lagging', node: r1 }, { cluster, term: 3, seq: 2, epoch: 1, key: BUS_KEY });
      await redis.xadd(keys.stream, '*', 'event', encodeEvent(missed));
      await redis.set(keys.seq(3), 2);
      // Delivered: r2 went unhealthy, at seq 3 (the router sees the gap).
      const r2 = { ...healthy.nodes.find((n) => n.id === 'r2')!, status: 'unhealthy' as const, reason: 'unreachable' as const, lagMs: null };
      const { event: next } = await publisher.publish('node.status', { nodeId: 'r2', from: 'healthy', to: 'unhealthy', reason: 'unreachable', node: r2 }, 1);
      expect(next.seq).toBe(3);

      await routerSees(db, () => node('r2')?.status === 'unhealthy', 5_000, 'r2 unhealthy (delivered)');
      await routerSees(db, () => node('r1')?.status === 'degraded', 5_000, 'r1 degraded (missed, caught up from the stream)');
      expect(node('r1')?.lagMs).toBe(7_000);
      // Another missed stretch, longer, then a delivered event about the same node: the newest state wins.
      for (const [seq, lagMs] of [[4, 8_000], [5, 9_000]] as const) {
        const e = createEvent('node.status', { nodeId: 'r1', from: 'degraded', to: 'degraded', reason: 'lagging', node: { ...r1, lagMs } }, { cluster, term: 3, seq, epoch: 1, key: BUS_KEY });
        await redis.xadd(keys.stream, '*', 'event', encodeEvent(e));
      }
      await redis.set(keys.seq(3), 5);
      await publisher.publish('node.status', { nodeId: 'r1', from: 'degraded', to: 'healthy', reason: 'ok', node: { ...r1, status: 'healthy', reason: 'ok', lagMs: 10 } }, 1);
      await routerSees(db, () => node('r1')?.status === 'healthy' && node('r1')?.lagMs === 10, 5_000, 'r1 healthy again (the newest event)');
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(node('r1')).toMatchObject({ status: 'healthy', lagMs: 10 });
      expect(node('r2')?.status).toBe('unhealthy');

      // Disconnected while events went out (none of them a snapshot): after it reconnects, the
      // router has them all, with no further event to reveal the gap.
      proxy.cutOff();
      await new Promise((resolve) => setTimeout(resolve, 200));
      const r2Back = { ...r2, status: 'degraded' as const, reason: 'lagging' as const, lagMs: 4_000 };
      await publisher.publish('node.status', { nodeId: 'r2', from: 'unhealthy', to: 'degraded', reason: 'lagging', node: r2Back }, 1);
      await publisher.publish('node.status', { nodeId: 'r2', from: 'degraded', to: 'degraded', reason: 'lagging', node: { ...r2Back, lagMs: 3_000 } }, 1);
      expect(node('r2')?.status).toBe('unhealthy');
      proxy.restore();
      await routerSees(db, () => node('r2')?.status === 'degraded' && node('r2')?.lagMs === 3_000, 10_000, 'r2 as published while the router was away');
    } finally {
      await db.close();
      await proxy.close();
    }
  });
});
