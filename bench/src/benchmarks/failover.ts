import { fileURLToPath } from 'node:url';
import { createLogger } from '@pgreplica/runtime';
import { createRouter, type Router } from '@pgreplica/router-client';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { RemediationWorker } from '@pgreplica/worker';
import { benchConfig, startMonitor } from '../monitor-harness.js';
import { summarize } from '../stats.js';
import type { Benchmark } from '../types.js';

const HOOK = fileURLToPath(new URL('../../../packages/sandbox/dist/hook.js', import.meta.url));
const WORKER = { http: { port: 0 }, hooks: { stop: `node ${HOOK} stop`, rejoin: `node ${HOOK} rejoin`, passEnv: ['PGREPLICA_SANDBOX_STATE'] } };
const FAILOVER = { policy: 'auto', failoverAfterMs: 1_000, witnessFreshMs: 3_000 };

async function cluster(sandbox: Sandbox) {
  process.env.PGREPLICA_SANDBOX_STATE = sandbox.writeStateFile();
  const monitor = await startMonitor(sandbox, { failover: FAILOVER, worker: WORKER });
  const worker = new RemediationWorker(benchConfig(sandbox, { failover: FAILOVER, worker: WORKER }), createLogger('silent', undefined, 'pgreplica-worker'));
  await worker.start();
  const db = createRouter({
    cluster: 'bench',
    redis: sandbox.redis!.url,
    connection: { user: 'postgres', password: sandbox.primary.connectionConfig.password as string, database: 'postgres' },
    maxWritePauseMs: 30_000,
    pool: { max: 4, query_timeout: 5_000 },
  });
  db.on('error', () => {});
  await db.ready();
  const deadline = Date.now() + 15_000;
  while (db.getTopology().topology?.nodes.some((n) => n.status !== 'healthy') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  await db.query('CREATE TABLE drill (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())');
  return {
    db,
    close: async () => {
      await db.close();
      await worker.close();
      await monitor.close();
    },
  };
}

/** Writes in a loop; resolves the time of the first write acknowledged by `nodePort` after `since`. */
function writer(db: Router) {
  let running = true;
  const acks: { at: number; port: number }[] = [];
  const loop = (async () => {
    while (running) {
      try {
        const { rows } = await db.write<{ port: number }>('INSERT INTO drill DEFAULT VALUES RETURNING inet_server_port() AS port');
        acks.push({ at: Date.now(), port: rows[0]!.port });
      } catch {
        // unacknowledged: counted by the tests, not here
      }
    }
  })();
  return {
    acks,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

/**
 * A failover drill — the primary killed with -9 under a write loop through
 * the router; time from the kill to the first write acknowledged by the new
 * primary — and a planned switchover's write pause. Median of several runs,
 * each on a fresh sandbox with monitor, worker and router.
 */
export const failoverBench: Benchmark = {
  name: 'failover',
  description: 'kill -9 of the primary -> first successful write (router, monitor, worker); switchover write pause',
  async run(ctx) {
    const recovery: number[] = [];
    const pauses: number[] = [];
    for (let run = 0; run < ctx.runs; run++) {
      const sandbox = await startSandbox({ replicas: 2 });
      const c = await cluster(sandbox);
      try {
        const w = writer(c.db);
        await new Promise((r) => setTimeout(r, 500));
        const killedAt = Date.now();
        await sandbox.primary.kill();
        const oldPort = sandbox.primary.port;
        const deadline = Date.now() + 60_000;
        while (!w.acks.some((a) => a.at > killedAt && a.port !== oldPort) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        await w.stop();
        const first = w.acks.find((a) => a.at > killedAt && a.port !== oldPort);
        if (!first) throw new Error('no write reached a new primary within 60 s');
        recovery.push(first.at - killedAt);

        // Switchover back and forth needs a healthy trio: switch over from the new primary to the remaining replica.
        const newPrimaryId = sandbox.nodes.find((n) => n.port === first.port)!.id;
        const target = sandbox.replicas.find((r) => r.id !== newPrimaryId)!.id;
        const { Queue } = await import('bullmq');
        const { Redis } = await import('ioredis');
        const { busKeys, REMEDIATION_QUEUE } = await import('@pgreplica/protocol');
        const redis = new Redis(sandbox.redis!.url, { maxRetriesPerRequest: null });
        const keys = busKeys('bench');
        const queue = new Queue(REMEDIATION_QUEUE, { connection: redis, prefix: keys.queuePrefix });
        const epoch = JSON.parse((await redis.get(keys.primary))!).epoch as number;
        const sub = redis.duplicate();
        const finished = new Promise<number>((resolve) => {
          sub.on('message', (_c: string, m: string) => {
            const e = JSON.parse(m) as { type: string; writePauseMs?: number };
            if (e.type === 'switchover.finished') resolve(e.writePauseMs ?? -1);
          });
        });
        await sub.subscribe(keys.events);
        const w2 = writer(c.db);
        await new Promise((r) => setTimeout(r, 300));
        await queue.add('switchover', { cluster: 'bench', epoch, candidateId: target, maxWritePauseMs: 10_000 }, { jobId: `bench-switchover-${run}` });
        pauses.push(await finished);
        await w2.stop();
        sub.disconnect();
        await queue.close();
        redis.disconnect();
        ctx.log(`run ${run + 1}/${ctx.runs}: kill -> first write ${recovery.at(-1)} ms; switchover write pause ${Math.round(pauses.at(-1)!)} ms`);
      } finally {
        await c.close();
        await sandbox.stop();
      }
    }
    return [
      { metric: 'failover: kill -9 -> first successful write', unit: 'ms', summary: summarize(recovery) },
      { metric: 'switchover write pause', unit: 'ms', summary: summarize(pauses) },
    ];
  },
};
