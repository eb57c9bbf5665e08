import { Monitor } from '@pgreplica/monitor';
import { createLogger, resolveConfig } from '@pgreplica/runtime';
import type { Sandbox } from '@pgreplica/sandbox';

/** Monitor (and worker) config for a benchmark's sandbox, cluster "bench". */
export function benchConfig(sandbox: Sandbox, extra: Record<string, unknown> = {}) {
  return resolveConfig(
    {
      cluster: 'bench',
      redis: { url: sandbox.redis!.url },
      nodes: sandbox.nodes.map((n, i) => ({ id: n.id, host: n.host, port: n.port, priority: i })),
      database: { user: 'postgres' },
      monitor: { probeIntervalMs: 250, heartbeatMs: 1_000, leader: { leaseTtlMs: 2_000 }, http: { port: 0 } },
      ...extra,
    },
    { PGREPLICA_DB_PASSWORD: sandbox.primary.connectionConfig.password as string },
  );
}

/** An in-process monitor for a benchmark's sandbox (cluster "bench"). */
export async function startMonitor(sandbox: Sandbox, extra: Record<string, unknown> = {}): Promise<Monitor> {
  const config = benchConfig(sandbox, extra);
  const monitor = new Monitor(config, createLogger(process.env.PGREPLICA_BENCH_LOG ?? 'silent', undefined, 'pgreplica-monitor'));
  await monitor.start();
  return monitor;
}
