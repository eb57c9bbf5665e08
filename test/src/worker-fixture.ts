import { type Config, createLogger, resolveConfig } from '@pgreplica/runtime';
import type { Sandbox } from '@pgreplica/sandbox';
import { RemediationWorker } from '@pgreplica/worker';
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { monitorConfig, monitorEnv } from './monitor-fixture.js';

/** The worker's program, run as a child process where a test kills or stops it. */
export const WORKER_MAIN = fileURLToPath(new URL('../../services/worker/dist/main.js', import.meta.url));

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

/** A worker running as a child process (pgreplica-worker), its output kept. */
export interface WorkerProcess {
  child: ChildProcess;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
}

/**
 * Starts pgreplica-worker as a child process on `configPath` (kill -9 and
 * SIGSTOP are real there) and waits until it says it started. The caller
 * kills it (SIGKILL) in teardown.
 */
export async function startWorkerProcess(sandbox: Sandbox, configPath: string, busKey?: string): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [WORKER_MAIN, '--config', configPath], {
    env: { ...process.env, ...workerEnv(sandbox, busKey), LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const started = Date.now();
  while (!output.includes('worker started')) {
    if (child.exitCode !== null || Date.now() - started > 15_000) {
      child.kill('SIGKILL');
      throw new Error(`pgreplica-worker did not start: ${output.slice(-2_000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { child, output: () => output };
}
