import type { Monitor } from '@pgreplica/monitor';
import { busKeys, parseEvent } from '@pgreplica/protocol';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';

const BUS_KEY = 'a-test-bus-key-of-32-characters!';

describe('monitor: Redis outage', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let bus: BusRecorder;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 1 });
    bus = await BusRecorder.start(sandbox.redis!.url, 'main', BUS_KEY);
    monitor = await startMonitor(sandbox, {}, BUS_KEY);
    await bus.waitFor((e) => e.type === 'snapshot', 15_000, 'first snapshot');
  });
  afterAll(async () => {
    await monitor?.close();
    await bus?.close();
    await sandbox?.stop();
  });

  it('signs every event with the bus key', () => {
    expect(bus.events.length).toBeGreaterThan(0);
    expect(bus.events.every((e) => typeof e.sig === 'string')).toBe(true);
    expect(bus.rejected).toEqual([]);
  });

  it('keeps probing while Redis is down, then reconnects and republishes a snapshot with a higher term', async () => {
    const termBefore = bus.events.at(-1)!.term;
    const redis = sandbox.redis!;
    await redis.stop();
    try {
      const observedAt = monitor.topology!.observedAt;
      await eventually(() => monitor.topology!.observedAt > observedAt, 5_000, 'rounds during the outage');
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(monitor.topology!.nodes.every((n) => n.status === 'healthy')).toBe(true);
      expect(monitor.isLeader).toBe(false);
      const health = (await (await fetch(`http://127.0.0.1:${monitor.httpPort}/health`)).json()) as { ok: boolean };
      expect(health.ok).toBe(true);
    } finally {
      // An empty Redis (the sandbox keeps nothing on disk): term, epoch and topology are gone.
      await redis.start();
    }
    const since = bus.events.length;
    const snapshot = await bus.waitFor((e) => e.type === 'snapshot', 20_000, 'snapshot after reconnect', since);
    expect(snapshot.term).toBeGreaterThan(termBefore);
    expect(snapshot.epoch).toBe(1);
    const check = new Redis(redis.url);
    try {
      const stored = await check.get(busKeys('main').topology);
      expect(stored && parseEvent(stored, { cluster: 'main', key: BUS_KEY }).ok).toBe(true);
    } finally {
      await check.quit();
    }
    expect(bus.outOfOrder).toEqual([]);
  });
});
