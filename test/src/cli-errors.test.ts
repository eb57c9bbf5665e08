import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Monitor } from '@pgreplica/monitor';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, writeConfig } from './cli-fixture.js';
import { eventually } from './helpers.js';
import { startMonitor } from './monitor-fixture.js';
import { clusterConfig, startWorker, workerEnv } from './worker-fixture.js';

const LOCAL_CLUSTER = fileURLToPath(new URL('../../scripts/local-cluster.mjs', import.meta.url));

// What a newcomer types wrong, or what goes away under them, gets one clear
// line and a meaningful exit code — never a stack trace, never silence.
describe('newcomer errors', () => {
  it('npm start with an unknown flag: one line and exit 2, nothing started', () => {
    const run = spawnSync(process.execPath, [LOCAL_CLUSTER, '--replica', '3'], { encoding: 'utf8', env: { ...process.env, PGREPLICA_LOCAL_DIR: '/nonexistent-not-used' } });
    expect(run.status).toBe(2);
    expect(run.stderr.trim().split('\n')[0]).toMatch(/^npm start: Unknown option '--replica'/);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it('npm start with a PG_BINDIR that holds no server: refused before anything starts', () => {
    const run = spawnSync(process.execPath, [LOCAL_CLUSTER], { encoding: 'utf8', env: { ...process.env, PG_BINDIR: '/nonexistent', PGREPLICA_LOCAL_DIR: '/nonexistent-not-used' } });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('PG_BINDIR=/nonexistent does not hold initdb');
    expect(run.stderr).not.toContain('[local] initdb');
  });

  describe('against a cluster', () => {
    let sandbox: Sandbox;
    let monitor: Monitor;
    let worker: RemediationWorker;
    let configPath: string;
    let env: NodeJS.ProcessEnv;

    beforeAll(async () => {
      sandbox = await startSandbox({ replicas: 1 });
      const config = clusterConfig(sandbox, { failover: { policy: 'manual' } });
      monitor = await startMonitor(sandbox, { failover: config.failover, worker: config.worker });
      worker = await startWorker(sandbox, { failover: config.failover });
      env = workerEnv(sandbox);
      configPath = writeConfig(sandbox.baseDir, 'cli.json', config);
      await eventually(async () => (await cli(['--config', configPath, 'status'], env)).code === 0, 15_000, 'a topology');
    });
    afterAll(async () => {
      await worker?.close();
      await monitor?.close();
      await sandbox?.stop();
    });

    it('promote --dry-run waits for and prints the verdict', async () => {
      const alive = await cli(['--config', configPath, 'promote', '--dry-run'], env);
      expect(alive.code).toBe(1);
      expect(alive.err).toContain('primary-reachable');
      await sandbox.primary.kill();
      await eventually(() => monitor.topology?.nodes.find((n) => n.id === 'p1')?.status === 'unhealthy', 15_000, 'p1 unhealthy');
      const dead = await cli(['--config', configPath, 'promote', '--dry-run', '--json'], env);
      expect(dead.code).toBe(0);
      expect(JSON.parse(dead.out)).toMatchObject({ result: { outcome: 'dry-run', reason: expect.stringMatching(/^would promote r1/) } });
      expect(await sandbox.node('r1').isInRecovery()).toBe(true);
      await sandbox.primary.start();
    });

    it('watch says when Redis goes away and when it is back', async () => {
      let stop!: () => void;
      const interrupted = new Promise<void>((resolve) => (stop = resolve));
      const watching = cli(['--config', configPath, 'watch'], env, interrupted);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      await sandbox.redis!.stop();
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      await sandbox.redis!.start();
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      stop();
      const result = await watching;
      expect(result.err).toContain('lost the connection to Redis');
      expect(result.err).toContain('reconnected to Redis');
    });
  });
});
