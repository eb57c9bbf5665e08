import { type Config, createLogger, resolveConfig } from '@pgreplica/runtime';
import type { Sandbox } from '@pgreplica/sandbox';
import { RemediationWorker } from '@pgreplica/worker';
import { fileURLToPath } from 'node:url';
import { monitorConfig, monitorEnv } from './monitor-fixture.js';

/** The sandbox's hook program. */
export const SANDBOX_HOOK = fileURLToPath(new URL('../../packages/sandbox/dist/hook.js', import.meta.url));

/** Environment of a worker for a sandbox: passwords, and the state file its hooks read. */
export function workerEnv(sandbox: Sandbox, busKey?: string): NodeJS.ProcessEnv {
  return {
    ...monitorEnv(sandbox, busKey),
    PGREPLICA_SANDBOX_STATE: sandbox.writeStateFile(),
  };
}

/** Config shared by the monitor and worker of a failover test. */
export function clusterConfig(sandbox: Sandbox, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return monitorConfig(sandbox, {
    failover: { policy: 'auto', failoverAfterMs: 1_000, witnessFreshMs: 3_000 },
    worker: { http: { port: 0 }, stalledIntervalMs: 1_000, lockDurationMs: 5_000, catchupTimeoutMs: 10_000, repointTimeoutMs: 15_000, hooks: { rejoin: `node ${SANDBOX_HOOK} rejoin`, stop: `node ${SANDBOX_HOOK} stop`, passEnv: ['PGREPLICA_SANDBOX_STATE'] } },
    ...overrides,
  });
}

/** An in-process worker. */
export async function startWorker(sandbox: Sandbox, overrides: Record<string, unknown> = {}, busKey?: string): Promise<RemediationWorker> {
  const env = workerEnv(sandbox, busKey);
  Object.assign(process.env, { PGREPLICA_SANDBOX_STATE: env.PGREPLICA_SANDBOX_STATE });
  const config: Config = resolveConfig(clusterConfig(sandbox, overrides), env);
  const worker = new RemediationWorker(config, createLogger(process.env.PGREPLICA_TEST_LOG ?? 'silent', undefined, 'pgreplica-worker'));
  await worker.start();
  return worker;
}
