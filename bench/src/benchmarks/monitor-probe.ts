import { ClusterAssessor, DEFAULT_HEALTH_THRESHOLDS, NodeProber } from '@pgreplica/probe';
import { startSandbox } from '@pgreplica/sandbox';
import pg from 'pg';
import { quantile, summarize } from '../stats.js';
import { type Benchmark, withRatio } from '../types.js';

const NODES = 10;

/**
 * Cost of one probe round over 10 nodes (10 persistent connections to the
 * sandbox's 3 servers) against the baseline of a bare `SELECT 1` on 10
 * persistent connections in the same run; and the CPU cost of assessing a
 * round (pure logic).
 */
export const monitorProbe: Benchmark = {
  name: 'monitor-probe-round',
  description: `probe round over ${NODES} node connections vs SELECT 1 on ${NODES} connections; assessment cost`,
  async run(ctx) {
    const rounds = ctx.quick ? 50 : 300;
    const sandbox = await startSandbox({ replicas: 2, redis: false });
    const targets = Array.from({ length: NODES }, (_, i) => {
      const node = sandbox.nodes[i % sandbox.nodes.length]!;
      return { id: `n${i}`, host: node.host, port: node.port };
    });
    const password = sandbox.primary.connectionConfig.password as string;
    const probers = targets.map((t) => new NodeProber(t, { user: 'postgres', password, database: 'postgres' }));
    const clients = targets.map((t) => new pg.Client({ host: t.host, port: t.port, user: 'postgres', password, database: 'postgres' }));
    try {
      await Promise.all(clients.map((c) => c.connect()));
      const assessor = new ClusterAssessor(
        targets.map((t, i) => ({ ...t, priority: i, weight: 1, tags: [] })),
        DEFAULT_HEALTH_THRESHOLDS,
        null,
      );
      const probeP50: number[] = [];
      const probeP99: number[] = [];
      const baseP50: number[] = [];
      const baseP99: number[] = [];
      const assessUs: number[] = [];
      for (let run = 0; run < ctx.runs; run++) {
        const probeTimes: number[] = [];
        const baseTimes: number[] = [];
        const assessTimes: number[] = [];
        for (let i = 0; i < rounds; i++) {
          let t = performance.now();
          await Promise.all(clients.map((c) => c.query('SELECT 1')));
          baseTimes.push(performance.now() - t);
          t = performance.now();
          const results = await Promise.all(probers.map((p) => p.probe()));
          probeTimes.push(performance.now() - t);
          t = performance.now();
          assessor.assess(results, { epoch: 1, primaryId: 'n0', systemIdentifier: null });
          assessTimes.push((performance.now() - t) * 1000);
        }
        probeP50.push(quantile(probeTimes, 0.5));
        probeP99.push(quantile(probeTimes, 0.99));
        baseP50.push(quantile(baseTimes, 0.5));
        baseP99.push(quantile(baseTimes, 0.99));
        assessUs.push(quantile(assessTimes, 0.5));
        ctx.log(`run ${run + 1}/${ctx.runs}: probe round p50 ${probeP50.at(-1)!.toFixed(2)} ms, SELECT 1 round p50 ${baseP50.at(-1)!.toFixed(2)} ms`);
      }
      const base50 = { metric: 'SELECT 1 round p50', summary: summarize(baseP50) };
      const base99 = { metric: 'SELECT 1 round p99', summary: summarize(baseP99) };
      return [
        { metric: base50.metric, unit: 'ms', summary: base50.summary },
        withRatio(`probe round (${NODES} nodes) p50`, 'ms', summarize(probeP50), base50),
        { metric: base99.metric, unit: 'ms', summary: base99.summary },
        withRatio(`probe round (${NODES} nodes) p99`, 'ms', summarize(probeP99), base99),
        { metric: `assess round (${NODES} nodes) p50`, unit: 'µs', summary: summarize(assessUs) },
      ];
    } finally {
      await Promise.all(probers.map((p) => p.close()));
      await Promise.all(clients.map((c) => c.end().catch(() => {})));
      await sandbox.stop();
    }
  },
};
