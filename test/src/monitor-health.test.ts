import type { Monitor } from '@pgreplica/monitor';
import type { NodeState } from '@pgreplica/protocol';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';

const INTERVAL_MS = 250;
const FALL = 3;
const CONNECT_TIMEOUT_MS = 1_000;

describe('monitor: health of a live cluster', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let bus: BusRecorder;
  const node = (id: string): NodeState => monitor.topology!.nodes.find((n) => n.id === id)!;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    bus = await BusRecorder.start(sandbox.redis!.url);
    monitor = await startMonitor(sandbox, { monitor: { thresholds: { fall: FALL, rise: 2 } } });
    await eventually(() => monitor.topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
  });
  afterAll(async () => {
    await monitor?.close();
    await bus?.close();
    await sandbox?.stop();
  });

  it('reports every node with its role, healthy, on the bus and over HTTP', async () => {
    expect(monitor.topology!.nodes.map((n) => [n.id, n.role, n.status])).toEqual([
      ['p1', 'primary', 'healthy'],
      ['r1', 'replica', 'healthy'],
      ['r2', 'replica', 'healthy'],
    ]);
    const snapshot = await bus.waitFor((e) => e.type === 'snapshot', 5_000, 'snapshot');
    expect(snapshot.type === 'snapshot' && snapshot.topology.primaryId).toBe('p1');
    expect(snapshot.epoch).toBe(1);
    const res = await fetch(`http://127.0.0.1:${monitor.httpPort}/topology`);
    expect(((await res.json()) as { nodes: unknown[] }).nodes).toHaveLength(3);
    for (const [path, code] of [['/nodes/p1/primary', 200], ['/nodes/r1/replica', 200], ['/nodes/r1/primary', 503]] as const) {
      expect((await fetch(`http://127.0.0.1:${monitor.httpPort}${path}`)).status, path).toBe(code);
    }
    const metrics = await (await fetch(`http://127.0.0.1:${monitor.httpPort}/metrics`)).text();
    expect(metrics).toContain('pgreplica_node_up{node="r1"} 1');
    expect(metrics).toContain('pgreplica_monitor_leader 1');
    expect(metrics).not.toContain(sandbox.primary.connectionConfig.password as string);
  });

  it('keeps lag at about zero on an idle primary for 10 s (heartbeat, not last replay time)', async () => {
    const worst = { ms: 0, bytes: 0 };
    const until = Date.now() + 10_000;
    while (Date.now() < until) {
      for (const id of ['r1', 'r2']) {
        worst.ms = Math.max(worst.ms, node(id).lagMs ?? Number.POSITIVE_INFINITY);
        worst.bytes = Math.max(worst.bytes, node(id).lagBytes ?? Number.POSITIVE_INFINITY);
      }
      await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS));
    }
    // now() - pg_last_xact_replay_timestamp() would have grown to ~10 s here.
    expect(worst.ms).toBeLessThan(500);
    expect(worst.bytes).toBeLessThan(64 * 1024);
    expect(['r1', 'r2'].map((id) => node(id).status)).toEqual(['healthy', 'healthy']);
  });

  it('marks a replica killed with -9 unhealthy within fall × interval + connect timeout, and healthy after restart', async () => {
    const since = bus.events.length;
    const killedAt = Date.now();
    await sandbox.node('r1').kill();
    const event = await bus.waitFor((e) => e.type === 'node.status' && e.nodeId === 'r1' && e.to === 'unhealthy', 15_000, 'r1 unhealthy', since);
    const bound = FALL * INTERVAL_MS + CONNECT_TIMEOUT_MS;
    // The bound plus one assessment interval of scheduling, and a second of slack for a loaded machine.
    expect(Date.parse(event.at) - killedAt).toBeLessThanOrEqual(bound + INTERVAL_MS + 1_000);
    expect(event.type === 'node.status' && event.reason).toBe('unreachable');
    expect(node('r2').status).toBe('healthy');

    await sandbox.node('r1').restart();
    await bus.waitFor((e) => e.type === 'node.status' && e.nodeId === 'r1' && e.to === 'healthy', 20_000, 'r1 healthy again', since);
  });

  it('marks a paused replica unhealthy by timeout while the other nodes keep being probed on time', async () => {
    const since = bus.events.length;
    const checks = (id: string) => Date.parse(node(id).lastCheckAt!);
    const before = { p1: checks('p1'), r1: checks('r1') };
    sandbox.node('r2').pause();
    try {
      const event = await bus.waitFor((e) => e.type === 'node.status' && e.nodeId === 'r2' && e.to === 'unhealthy', 15_000, 'r2 unhealthy', since);
      expect(event.type === 'node.status' && event.reason).toBe('timeout');
      // During the pause the others were still probed every interval (a hung node delays nobody).
      const pausedForMs = Date.parse(event.at) - before.p1;
      expect(checks('p1') - before.p1).toBeGreaterThanOrEqual(pausedForMs - 3 * INTERVAL_MS);
      expect(checks('r1') - before.r1).toBeGreaterThanOrEqual(pausedForMs - 3 * INTERVAL_MS);
      expect(node('p1').status).toBe('healthy');
    } finally {
      sandbox.node('r2').resume();
    }
    await bus.waitFor((e) => e.type === 'node.status' && e.nodeId === 'r2' && e.to === 'healthy', 20_000, 'r2 healthy again', since);
  });

  it('flags a replica promoted by hand as a second primary', async () => {
    const since = bus.events.length;
    await sandbox.node('r2').promote();
    const event = await bus.waitFor((e) => e.type === 'node.status' && e.nodeId === 'r2' && e.to === 'unhealthy', 15_000, 'r2 second primary', since);
    expect(event.type === 'node.status' && event.reason).toBe('second-primary');
    expect(event.type === 'node.status' && event.detail).toContain('primary of epoch 1 is p1');
    expect(node('p1')).toMatchObject({ role: 'primary', status: expect.stringMatching(/healthy|degraded/) });
    expect((await fetch(`http://127.0.0.1:${monitor.httpPort}/nodes/r2/primary`)).status).toBe(503);
    expect(bus.outOfOrder).toEqual([]);
    expect(bus.rejected).toEqual([]);
  });
});
