import type { Monitor } from '@pgreplica/monitor';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, writeConfig } from './cli-fixture.js';
import { eventually } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';
import { clusterConfig, startWorker, workerEnv } from './worker-fixture.js';

const BUS_KEY = 'cli-rejoin-test-bus-key-0123456789';

// Without worker.autoRejoin a deposed primary stays fenced after it comes
// back; `pgreplica rejoin <node>` is how an operator brings it back as a
// replica of the new primary.
describe('pgreplica rejoin <node>', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let worker: RemediationWorker;
  let bus: BusRecorder;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    const config = clusterConfig(sandbox);
    const workerSection = { ...(config.worker as object), autoRejoin: false };
    monitor = await startMonitor(sandbox, { failover: config.failover, worker: workerSection }, BUS_KEY);
    worker = await startWorker(sandbox, { worker: workerSection }, BUS_KEY);
    bus = await BusRecorder.start(sandbox.redis!.url, 'main', BUS_KEY);
    await eventually(() => monitor.topology?.nodes.every((n) => n.status === 'healthy') === true, 20_000, 'all healthy');
  });
  afterAll(async () => {
    await worker?.close();
    await monitor?.close();
    await bus?.close();
    await sandbox?.stop();
  });

  it('a deposed primary left fenced streams from the new primary after `pgreplica rejoin`', async () => {
    await sandbox.primary.kill();
    const changed = await bus.waitFor((e) => e.type === 'primary.changed', 60_000, 'primary.changed');
    const newPrimary = changed.type === 'primary.changed' ? changed.toId : '';
    await sandbox.primary.start();
    await eventually(() => monitor.topology?.nodes.find((n) => n.id === 'p1')?.reason === 'fenced', 30_000, 'p1 fenced');
    // Nothing rejoins it by itself.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(bus.events.some((e) => e.type === 'node.rejoined')).toBe(false);

    const configPath = writeConfig(sandbox.baseDir, 'cli-rejoin.json', clusterConfig(sandbox));
    const result = await cli(['--config', configPath, 'rejoin', 'p1', '--json'], workerEnv(sandbox, BUS_KEY));
    expect(result.code, `${result.out}\n${result.err}`).toBe(0);
    expect(JSON.parse(result.out)).toMatchObject({ result: { outcome: 'rejoined', nodeId: 'p1', primaryId: newPrimary } });
    expect(await sandbox.primary.isInRecovery()).toBe(true);
    await eventually(async () => {
      const rows = await sandbox.node(newPrimary).query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_replication WHERE application_name = 'p1' AND state = 'streaming'");
      return rows[0]!.n === 1;
    }, 30_000, 'p1 streaming from the new primary');
  });
});
