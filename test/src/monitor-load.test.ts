import { join } from 'node:path';
import type { Monitor } from '@pgreplica/monitor';
import { runCommand, type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';

// pgpool-II detaches healthy replicas whose health check is slow under load.
// A busy node is not a dead one: with the default thresholds, a pgbench that
// saturates both cores for 30 s must not make any node unhealthy.
describe('monitor under load', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let bus: BusRecorder;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    bus = await BusRecorder.start(sandbox.redis!.url);
    // Production defaults: 1 s interval, 2 s connect and 3 s statement timeouts, fall 3.
    monitor = await startMonitor(sandbox, { monitor: { probeIntervalMs: 1_000, heartbeatMs: 5_000, leader: { leaseTtlMs: 5_000 } }, database: { user: 'postgres' } });
    await eventually(() => monitor.topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
  });
  afterAll(async () => {
    await monitor?.close();
    await bus?.close();
    await sandbox?.stop();
  });

  it('marks no node unhealthy while pgbench saturates both cores for 30 s', async () => {
    const { primary } = sandbox;
    const pgbench = (args: string[]) =>
      runCommand(join(sandbox.binaries.pgBinDir, 'pgbench'), ['-h', primary.host, '-p', String(primary.port), '-U', 'postgres', ...args, 'postgres'], {
        env: { PGPASSWORD: primary.connectionConfig.password as string },
        timeoutMs: 120_000,
      });
    await pgbench(['-i', '-s', '2', '-q']);
    const since = bus.events.length;
    const { stdout } = await pgbench(['-c', '16', '-j', '2', '-T', '30', '-n']);
    expect(stdout).toMatch(/tps = /);
    const statuses = bus.events.slice(since).filter((e) => e.type === 'node.status');
    expect(statuses.filter((e) => e.type === 'node.status' && e.to === 'unhealthy')).toEqual([]);
    expect(monitor.topology!.nodes.map((n) => n.status)).not.toContain('unhealthy');
    const rounds = await (await fetch(`http://127.0.0.1:${monitor.httpPort}/metrics`)).text();
    expect(rounds).toMatch(/pgreplica_probe_rounds_total \d{2,}/);
  });
});
