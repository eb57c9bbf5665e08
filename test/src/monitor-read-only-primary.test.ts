import { ChangeLock } from '@pgreplica/bus';
import type { Monitor } from '@pgreplica/monitor';
import { busKeys, type NodeState } from '@pgreplica/protocol';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';

const INTERVAL_MS = 250;
const FALL = 3;

/**
 * A primary of the current epoch with `default_transaction_read_only` on
 * refuses every write with 25006: the monitor must say so (degraded,
 * reason `read-only`) instead of calling it healthy, except while a job holds
 * the change lock (a switchover drains the primary that way on purpose).
 */
describe('monitor: a read-only primary', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let bus: BusRecorder;
  let redis: Redis;
  const node = (id: string): NodeState => monitor.topology!.nodes.find((n) => n.id === id)!;
  const setReadOnly = async (on: boolean) => {
    const p1 = sandbox.node('p1');
    await p1.query(on ? 'ALTER SYSTEM SET default_transaction_read_only = on' : 'ALTER SYSTEM RESET default_transaction_read_only');
    await p1.query('SELECT pg_reload_conf()');
  };

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 1 });
    bus = await BusRecorder.start(sandbox.redis!.url);
    redis = new Redis(sandbox.redis!.url);
    redis.on('error', () => {});
    monitor = await startMonitor(sandbox, { monitor: { thresholds: { fall: FALL, rise: 2 } } });
    await eventually(() => monitor.topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
  });
  afterEach(async () => {
    await setReadOnly(false);
    await eventually(() => node('p1').status === 'healthy', 10_000, 'p1 healthy after the test');
  });
  afterAll(async () => {
    await monitor?.close();
    await bus?.close();
    redis?.disconnect();
    await sandbox?.stop();
  });

  it('publishes p1 degraded with reason read-only within a bounded wait, keeps it the write target, and healthy again once reset', async () => {
    const since = bus.events.length;
    const setAt = Date.now();
    await setReadOnly(true);
    // The setting took: a write on a new session is refused as it would be for a router.
    await expect(sandbox.node('p1').query('CREATE TABLE read_only_probe (id int)')).rejects.toMatchObject({ code: '25006' });

    const event = await bus.waitFor((e) => e.type === 'node.status' && e.nodeId === 'p1' && e.to === 'degraded', 10_000, 'p1 read-only', since);
    expect(event.type === 'node.status' && event.reason).toBe('read-only');
    expect(event.type === 'node.status' && event.detail).toContain('25006');
    // fall rounds, plus a round of scheduling and a second of slack for a loaded machine.
    expect(Date.parse(event.at) - setAt).toBeLessThanOrEqual((FALL + 1) * INTERVAL_MS + 1_000 + 1_000);
    expect(node('p1')).toMatchObject({ role: 'primary', status: 'degraded', reason: 'read-only' });
    expect(node('r1')).toMatchObject({ status: 'healthy' });
    expect(monitor.topology!.primaryId).toBe('p1');
    // Degraded, not unhealthy: HAProxy's write check still passes (no outage of its own making).
    expect((await fetch(`http://127.0.0.1:${monitor.httpPort}/nodes/p1/primary`)).status).toBe(200);
    const metrics = await (await fetch(`http://127.0.0.1:${monitor.httpPort}/metrics`)).text();
    expect(metrics).toContain('pgreplica_node_reason{node="p1",reason="read-only"} 1');
    expect(metrics).toContain('pgreplica_node_status{node="p1",status="degraded"} 1');

    await setReadOnly(false);
    const healed = await bus.waitFor((e) => e.type === 'node.status' && e.nodeId === 'p1' && e.to === 'healthy', 10_000, 'p1 healthy again', since);
    expect(healed.type === 'node.status' && healed.reason).toBe('ok');
    // Writable again (a new session).
    await sandbox.node('p1').query('CREATE TABLE read_only_probe (id int)');
    await sandbox.node('p1').query('DROP TABLE read_only_probe');
    expect(bus.outOfOrder).toEqual([]);
  });

  it('stays healthy while a job holds the change lock (a switchover draining it), and is flagged once the lock is gone', async () => {
    const lock = await new ChangeLock(redis, busKeys('main')).acquire('switchover.main.e1.r1.test', 2_000);
    expect(lock).not.toBeNull();
    const since = bus.events.length;
    let released = false;
    try {
      await setReadOnly(true);
      // Many times the fall hysteresis: a switchover's drain is never reported.
      await new Promise((resolve) => setTimeout(resolve, 4 * FALL * INTERVAL_MS));
      expect(bus.statusOf('p1', since)).toEqual([]);
      expect(node('p1')).toMatchObject({ status: 'healthy', reason: 'ok' });
      await lock!.release();
      released = true;
      const releasedAt = Date.now();
      const event = await bus.waitFor((e) => e.type === 'node.status' && e.nodeId === 'p1' && e.to === 'degraded', 10_000, 'p1 read-only after the lock', since);
      expect(event.type === 'node.status' && event.reason).toBe('read-only');
      expect(Date.parse(event.at) - releasedAt).toBeLessThanOrEqual((FALL + 1) * INTERVAL_MS + 1_000 + 1_000);
    } finally {
      if (!released) await lock!.release().catch(() => {});
    }
  });
});
