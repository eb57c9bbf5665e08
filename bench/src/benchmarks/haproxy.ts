import { join } from 'node:path';
import { HaproxyProcess, READ_ONLY_LISTENER, READ_WRITE_LISTENER } from '@pgreplica/deploy-harness';
import { freePort, runCommand, type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { startMonitor } from '../monitor-harness.js';
import { summarize } from '../stats.js';
import { type Benchmark, withRatio } from '../types.js';

const SCALE = 5;
const CLIENTS = 8;

/** pgbench -S (point SELECTs) against 127.0.0.1:`port`; returns its tps. */
async function selectTps(sandbox: Sandbox, port: number, seconds: number, extra: string[] = []): Promise<number> {
  const { stdout } = await runCommand(
    join(sandbox.binaries.pgBinDir, 'pgbench'),
    ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-S', '-n', '-c', String(CLIENTS), '-j', '2', '-T', String(seconds), ...extra, 'postgres'],
    { env: { PGPASSWORD: sandbox.primary.connectionConfig.password as string }, timeoutMs: 300_000 },
  );
  const match = /tps = ([\d.]+)/.exec(stdout);
  if (!match) throw new Error(`no tps in pgbench output: ${stdout}`);
  return Number(match[1]);
}

/**
 * Throughput of clients that go through HAProxy (deploy/haproxy/haproxy.cfg,
 * checks on the monitor) against the same clients connecting directly, in
 * the same run, interleaved: pgbench -S on the read port (spread over 2
 * replicas) against one replica directly, on the write port against the
 * primary directly, and with a new connection per transaction (-C) on the
 * read port against a replica directly.
 */
export const haproxyBench: Benchmark = {
  name: 'haproxy',
  description: `pgbench -S (scale ${SCALE}, ${CLIENTS} clients) through HAProxy's read and write ports vs directly to a replica / the primary`,
  async run(ctx) {
    const seconds = ctx.quick ? 3 : 10;
    const sandbox = await startSandbox({ replicas: 2 });
    let monitor: Awaited<ReturnType<typeof startMonitor>> | undefined;
    let haproxy: HaproxyProcess | undefined;
    try {
      monitor = await startMonitor(sandbox);
      haproxy = await HaproxyProcess.start({
        nodes: sandbox.nodes.map((n) => ({ id: n.id, host: n.host, port: n.port })),
        monitor: { host: '127.0.0.1', port: monitor.httpPort },
        readWritePort: await freePort(),
        readOnlyPort: await freePort(),
      });
      await runCommand(join(sandbox.binaries.pgBinDir, 'pgbench'), ['-h', '127.0.0.1', '-p', String(sandbox.primary.port), '-U', 'postgres', '-i', '-s', String(SCALE), '-q', 'postgres'], {
        env: { PGPASSWORD: sandbox.primary.connectionConfig.password as string },
        timeoutMs: 300_000,
      });
      await sandbox.waitForReplay(sandbox.replicas, 60_000);
      const upIn = (servers: { listener: string; server: string; status: string }[], listener: string) =>
        servers.filter((s) => s.listener === listener && s.status === 'UP').map((s) => s.server).sort().join();
      await haproxy.waitFor((s) => upIn(s, READ_WRITE_LISTENER) === 'p1' && upIn(s, READ_ONLY_LISTENER) === 'r1,r2', 20_000, 'all servers up');

      const replica = sandbox.replicas[0]!.port;
      const series = { readPort: [] as number[], replica: [] as number[], writePort: [] as number[], primary: [] as number[], readPortC: [] as number[], replicaC: [] as number[] };
      for (let i = 0; i < ctx.runs; i++) {
        series.replica.push(await selectTps(sandbox, replica, seconds));
        series.readPort.push(await selectTps(sandbox, haproxy.readOnlyPort, seconds));
        series.primary.push(await selectTps(sandbox, sandbox.primary.port, seconds));
        series.writePort.push(await selectTps(sandbox, haproxy.readWritePort, seconds));
        series.replicaC.push(await selectTps(sandbox, replica, seconds, ['-C']));
        series.readPortC.push(await selectTps(sandbox, haproxy.readOnlyPort, seconds, ['-C']));
        ctx.log(
          `run ${i + 1}/${ctx.runs}: read port ${series.readPort.at(-1)!.toFixed(0)} vs replica ${series.replica.at(-1)!.toFixed(0)} tps; ` +
            `write port ${series.writePort.at(-1)!.toFixed(0)} vs primary ${series.primary.at(-1)!.toFixed(0)} tps; ` +
            `-C: read port ${series.readPortC.at(-1)!.toFixed(0)} vs replica ${series.replicaC.at(-1)!.toFixed(0)} tps`,
        );
      }
      const replicaBase = { metric: 'direct to one replica', summary: summarize(series.replica) };
      const primaryBase = { metric: 'direct to the primary', summary: summarize(series.primary) };
      const connectBase = { metric: 'direct to one replica, -C', summary: summarize(series.replicaC) };
      return [
        { metric: replicaBase.metric, unit: 'tps', summary: replicaBase.summary },
        withRatio('HAProxy read port (2 replicas)', 'tps', summarize(series.readPort), replicaBase),
        { metric: primaryBase.metric, unit: 'tps', summary: primaryBase.summary },
        withRatio('HAProxy write port', 'tps', summarize(series.writePort), primaryBase),
        { metric: connectBase.metric, unit: 'tps', summary: connectBase.summary },
        withRatio('HAProxy read port, -C (connection per transaction)', 'tps', summarize(series.readPortC), connectBase),
      ];
    } finally {
      await haproxy?.close();
      await monitor?.close();
      await sandbox.stop();
    }
  },
};
