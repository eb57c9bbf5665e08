import type { Monitor } from '@pgreplica/monitor';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';

describe('monitor: lag thresholds', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let bus: BusRecorder;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    bus = await BusRecorder.start(sandbox.redis!.url);
    monitor = await startMonitor(sandbox, {
      monitor: { thresholds: { degradedLagMs: 1_000, unhealthyLagMs: 2_500, rise: 2, fall: 2 } },
    });
    await eventually(() => monitor.topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
  });
  afterAll(async () => {
    await monitor?.close();
    await bus?.close();
    await sandbox?.stop();
  });

  it('a replica with recovery_min_apply_delay shows growing lag, goes degraded, then unhealthy, then recovers', async () => {
    const since = bus.events.length;
    const r1 = sandbox.node('r1');
    await r1.setApplyDelay(6_000);
    const lags: number[] = [];
    const sampler = setInterval(() => {
      const lag = monitor.topology?.nodes.find((n) => n.id === 'r1')?.lagMs;
      if (typeof lag === 'number') lags.push(lag);
    }, 250);
    try {
      await bus.waitFor((e) => e.type === 'node.status' && e.nodeId === 'r1' && e.to === 'degraded', 15_000, 'r1 degraded', since);
      await bus.waitFor((e) => e.type === 'node.status' && e.nodeId === 'r1' && e.to === 'unhealthy', 15_000, 'r1 unhealthy', since);
    } finally {
      clearInterval(sampler);
      await r1.setApplyDelay(0);
    }
    const statuses = bus.statusOf('r1', since).map((s) => s.to);
    expect(statuses.indexOf('degraded')).toBeLessThan(statuses.indexOf('unhealthy'));
    for (const s of bus.statusOf('r1', since)) expect(['lagging', 'replay-stalled', 'ok']).toContain(s.reason);
    // The lag grew past both limits while the delay was on.
    expect(Math.max(...lags)).toBeGreaterThanOrEqual(2_500);
    expect(lags.findIndex((l) => l >= 1_000)).toBeLessThan(lags.findIndex((l) => l >= 2_500));
    expect(monitor.topology!.nodes.find((n) => n.id === 'r2')!.status).toBe('healthy');
    await bus.waitFor((e) => e.type === 'node.status' && e.nodeId === 'r1' && e.to === 'healthy', 20_000, 'r1 healthy again', since);
  });

  it('paused replay makes a replica unhealthy with reason replay-paused at once', async () => {
    const since = bus.events.length;
    const r2 = sandbox.node('r2');
    await r2.pauseReplay();
    try {
      const event = await bus.waitFor((e) => e.type === 'node.status' && e.nodeId === 'r2' && e.to === 'unhealthy', 10_000, 'r2 unhealthy', since);
      expect(event.type === 'node.status' && event.reason).toBe('replay-paused');
    } finally {
      await r2.resumeReplay();
    }
    await bus.waitFor((e) => e.type === 'node.status' && e.nodeId === 'r2' && e.to === 'healthy', 20_000, 'r2 healthy again', since);
  });
});
