import { createLogger, Monitor, resolveConfig } from '@pgreplica/monitor';
import type { Sandbox } from '@pgreplica/sandbox';

/** An in-process monitor for a benchmark's sandbox (cluster "bench"). */
export async function startMonitor(sandbox: Sandbox): Promise<Monitor> {
  const config = resolveConfig(
    {
      cluster: 'bench',
      redis: { url: sandbox.redis!.url },
      nodes: sandbox.nodes.map((n, i) => ({ id: n.id, host: n.host, port: n.port, priority: i })),
      database: { user: 'postgres' },
      probeIntervalMs: 250,
      heartbeatMs: 1_000,
      leader: { leaseTtlMs: 2_000 },
      http: { port: 0 },
    },
    { PGREPLICA_DB_PASSWORD: sandbox.primary.connectionConfig.password as string },
  );
  const monitor = new Monitor(config, createLogger('silent'));
  await monitor.start();
  return monitor;
}
