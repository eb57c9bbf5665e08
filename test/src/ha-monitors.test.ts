import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import type { Monitor } from '@pgreplica/monitor';
import type { RemediationWorker } from '@pgreplica/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';
import { TcpProxy } from './tcp-proxy.js';
import { clusterConfig, startWorker } from './worker-fixture.js';

const KEY = 'ha-test-bus-key-0123456789abcdef';

// Two monitors and two workers for one cluster. Monitor A reaches PostgreSQL
// through proxies the test can cut (a partition from the databases, not from
// Redis); monitor B reaches it directly.
describe('several monitors and workers', () => {
  let sandbox: Sandbox;
  let proxies: TcpProxy[];
  let a: Monitor;
  let b: Monitor;
  let workers: RemediationWorker[];
  let bus: BusRecorder;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    proxies = await Promise.all(sandbox.nodes.map((n) => TcpProxy.start(n.port)));
    const config = clusterConfig(sandbox);
    const viaProxies = sandbox.nodes.map((n, i) => ({ id: n.id, host: '127.0.0.1', port: proxies[i]!.port, priority: i }));
    bus = await BusRecorder.start(sandbox.redis!.url, 'main', KEY);
    a = await startMonitor(sandbox, { instanceId: 'monitor-a', nodes: viaProxies, failover: config.failover, worker: config.worker }, KEY);
    await eventually(() => a.isLeader, 10_000, 'monitor A leads');
    b = await startMonitor(sandbox, { instanceId: 'monitor-b', failover: config.failover, worker: config.worker }, KEY);
    workers = [await startWorker(sandbox, { instanceId: 'worker-1' }, KEY), await startWorker(sandbox, { instanceId: 'worker-2' }, KEY)];
    await eventually(() => b.topology?.nodes.every((n) => n.status === 'healthy') === true, 20_000, 'all healthy');
  });
  afterAll(async () => {
    for (const w of workers ?? []) await w.close();
    await a?.close();
    await b?.close();
    for (const p of proxies ?? []) await p.close();
    await bus?.close();
    await sandbox?.stop();
  });

  it('a leader cut off from every database (not from Redis) hands the lease over and forces no failover', async () => {
    const since = bus.events.length;
    for (const p of proxies) p.cutOff();
    await eventually(() => b.isLeader && !a.isLeader, 15_000, 'monitor B leads');
    // Longer than failoverAfterMs and the witness window together: A saw "every node down" all along.
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    expect(a.isLeader).toBe(false);
    const moved = bus.events.slice(since).filter((e) => e.type === 'failover.started' || e.type === 'primary.changed' || (e.type === 'node.status' && e.to === 'unhealthy'));
    expect(moved).toEqual([]);
    expect(await sandbox.node('p1').isInRecovery()).toBe(false);
    for (const p of proxies) p.restore();
    await eventually(() => a.topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'A sees the nodes again');
    expect(b.isLeader).toBe(true);
  });

  it('a dead primary is promoted exactly once with two monitors and two workers', async () => {
    const since = bus.events.length;
    await sandbox.primary.kill();
    await bus.waitFor((e) => e.type === 'primary.changed', 30_000, 'primary.changed', since);
    // Time for a second promotion, if anything were to run one.
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const events = bus.events.slice(since);
    expect(events.filter((e) => e.type === 'primary.changed').map((e) => e.epoch)).toEqual([2]);
    expect(events.filter((e) => e.type === 'failover.started')).toHaveLength(1);
    const writable = await Promise.all(['r1', 'r2'].map(async (id) => !(await sandbox.node(id).isInRecovery())));
    expect(writable.filter(Boolean)).toHaveLength(1);
    expect(bus.outOfOrder).toEqual([]);
    expect(bus.rejected).toEqual([]);
  });
});
