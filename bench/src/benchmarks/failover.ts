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
/**
 * `defaults`: what a user gets from deploy/monitor/monitor.example.yaml —
 * every monitor, worker and router setting at its default, automatic
 * failover on. `tuned`: the sandbox's faster probing (250 ms), heartbeat
 * (1 s), lease (2 s) and failover delay (1 s), and a 5 s query timeout in
 * the router's pools.
 */
type Profile = 'defaults' | 'tuned';

const SETTINGS: Record<Profile, Record<string, unknown>> = {
  defaults: { monitor: { http: { port: 0 } }, failover: { policy: 'auto' }, worker: WORKER },
  tuned: { failover: { policy: 'auto', failoverAfterMs: 1_000, witnessFreshMs: 3_000 }, worker: WORKER },
};

async function cluster(sandbox: Sandbox, profile: Profile) {
  process.env.PGREPLICA_SANDBOX_STATE = sandbox.writeStateFile();
  const monitor = await startMonitor(sandbox, SETTINGS[profile]);
  const worker = new RemediationWorker(benchConfig(sandbox, SETTINGS[profile]), createLogger(process.env.PGREPLICA_BENCH_LOG ?? 'silent', undefined, 'pgreplica-worker'));
  await worker.start();
  const db = createRouter({
    cluster: 'bench',
    redis: sandbox.redis!.url,
    connection: { user: 'postgres', password: sandbox.primary.connectionConfig.password as string, database: 'postgres' },
    ...(profile === 'tuned' ? { maxWritePauseMs: 30_000, pool: { max: 4, query_timeout: 5_000 } } : {}),
  });
  db.on('error', () => {});
  await db.ready();
  if (process.env.PGREPLICA_BENCH_DEBUG) process.stderr.write('router ready\n');
  const deadline = Date.now() + 15_000;
  while (db.getTopology().topology?.nodes.some((n) => n.status !== 'healthy') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  await db.query('CREATE TABLE drill (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())');
  // The reader's first reads must find the table on every replica.
  await sandbox.waitForReplay();
  return {
    db,
    close: async () => {
      await db.close();
      await worker.close();
      await monitor.close();
    },
  };
}

/** Reads in a loop (routed to replicas); counts the ones that fail. */
function reader(db: Router) {
  let running = true;
  const counts = { ok: 0, failed: 0, errors: new Map<string, number>() };
  const loop = (async () => {
    while (running) {
      try {
        await db.read('SELECT count(*) FROM drill');
        counts.ok++;
      } catch (err) {
        counts.failed++;
        const key = `${(err as { code?: string }).code ?? ''} ${(err as Error).message}`.slice(0, 120);
        counts.errors.set(key, (counts.errors.get(key) ?? 0) + 1);
        if (process.env.PGREPLICA_BENCH_DEBUG && counts.failed < 4) {
          const t = db.getTopology();
          process.stderr.write(`read failed at ${Date.now()}: ${key}; epoch ${t.epoch} primary ${t.topology?.primaryId} fallback ${t.fallback} nodes ${JSON.stringify(t.topology?.nodes.map((n) => [n.id, n.role, n.status, n.reason, n.lagMs]))}\n`);
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  })();
  return {
    counts,
    stop: async () => {
      running = false;
      await loop;
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
 * The primary hung (SIGSTOP of all its processes) under four write loops, on
 * a fresh cluster (a failover earlier in the same run would hold the next one
 * back for the flap window): time to the first write another node takes. The
 * writers' router uses a query_timeout, as its README advises: without one, a
 * write sent to a hung server waits for it for as long as it hangs.
 */
async function hangDrill(profile: Profile): Promise<number> {
  const sandbox = await startSandbox({ replicas: 2 });
  const c = await cluster(sandbox, profile);
  const db = createRouter({
    cluster: 'bench',
    redis: sandbox.redis!.url,
    connection: { user: 'postgres', password: sandbox.primary.connectionConfig.password as string, database: 'postgres' },
    maxWritePauseMs: 30_000,
    pool: { max: 4, query_timeout: 5_000 },
  });
  db.on('error', () => {});
  const hung = sandbox.primary;
  try {
    await db.ready();
    const writers = [writer(db), writer(db), writer(db), writer(db)];
    await new Promise((resolve) => setTimeout(resolve, 500));
    const hungAt = Date.now();
    hung.pause();
    const firstElsewhere = () => writers.flatMap((w) => w.acks).filter((a) => a.at > hungAt && a.port !== hung.port).sort((a, b) => a.at - b.at)[0];
    for (const deadline = Date.now() + 60_000; !firstElsewhere() && Date.now() < deadline; ) await new Promise((resolve) => setTimeout(resolve, 20));
    const first = firstElsewhere();
    hung.resume();
    await Promise.all(writers.map((w) => w.stop()));
    if (!first) throw new Error(`${profile}: no write reached another node within 60 s of the hang`);
    return first.at - hungAt;
  } finally {
    if (hung.running) hung.resume();
    await db.close();
    await c.close();
    await sandbox.stop();
  }
}

/**
 * A failover drill — the primary killed with -9 under a write loop and a
 * read loop through the router; time from the kill to the first write
 * acknowledged by the new primary, and the reads that failed meanwhile —
 * a planned switchover's write pause, and on a fresh cluster the primary
 * hung (SIGSTOP) under four write loops: time to the first write another
 * node takes. With the documented defaults, then
 * tuned; median of several runs, each on a fresh sandbox with monitor,
 * worker and router.
 */
export const failoverBench: Benchmark = {
  name: 'failover',
  description: 'kill -9 of the primary -> first successful write (router, monitor, worker); switchover write pause; hung primary -> first write elsewhere',
  async run(ctx) {
    const figures = [];
    for (const profile of ['defaults', 'tuned'] as const) {
      const recovery: number[] = [];
      const pauses: number[] = [];
      const failedReads: number[] = [];
      const hangRecovery: number[] = [];
      for (let run = 0; run < ctx.runs; run++) {
        const sandbox = await startSandbox({ replicas: 2 });
        ctx.log(`${profile} run ${run + 1}: sandbox up`);
        const c = await cluster(sandbox, profile);
        ctx.log(`${profile} run ${run + 1}: monitor, worker and router up`);
        try {
          const w = writer(c.db);
          const r = reader(c.db);
          let debugSub: import('ioredis').Redis | undefined;
          if (process.env.PGREPLICA_BENCH_DEBUG) {
            const { Redis } = await import('ioredis');
            debugSub = new Redis(sandbox.redis!.url);
            debugSub.on('message', (_c: string, m: string) => {
              const e = JSON.parse(m) as { type: string; at: string; epoch: number; nodeId?: string; node?: { lagMs: number | null; reason: string }; topology?: { nodes: { id: string; lagMs: number | null; reason: string }[] } };
              const r2 = e.type === 'snapshot' ? e.topology?.nodes.find((n) => n.id === 'r2') : e.nodeId === 'r2' ? e.node : undefined;
              if (r2 || e.type === 'primary.changed') process.stderr.write(`bus ${Date.parse(e.at)} ${e.type} e${e.epoch} r2 ${JSON.stringify(r2 ? [r2.reason, r2.lagMs] : null)}\n`);
            });
            await debugSub.subscribe('pgreplica:{bench}:events');
          }
          await new Promise((resolve) => setTimeout(resolve, 500));
          const killedAt = Date.now();
          await sandbox.primary.kill();
          const oldPort = sandbox.primary.port;
          const deadline = Date.now() + 60_000;
          while (!w.acks.some((a) => a.at > killedAt && a.port !== oldPort) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
          await w.stop();
          await r.stop();
          debugSub?.disconnect();
          const first = w.acks.find((a) => a.at > killedAt && a.port !== oldPort);
          if (!first) throw new Error(`${profile}: no write reached a new primary within 60 s`);
          recovery.push(first.at - killedAt);
          failedReads.push(r.counts.failed);

          // Switchover needs a healthy pair: from the new primary to the remaining replica.
          const newPrimaryId = sandbox.nodes.find((n) => n.port === first.port)!.id;
          const target = sandbox.replicas.find((n) => n.id !== newPrimaryId)!.id;
          const { Queue } = await import('bullmq');
          const { Redis } = await import('ioredis');
          const { busKeys, REMEDIATION_QUEUE } = await import('@pgreplica/protocol');
          const redis = new Redis(sandbox.redis!.url, { maxRetriesPerRequest: null });
          const keys = busKeys('bench');
          const queue = new Queue(REMEDIATION_QUEUE, { connection: redis, prefix: keys.queuePrefix });
          // The router may write to the new primary before the worker announces it (it asks the nodes): wait for the bus.
          let epoch = 0;
          for (const until = Date.now() + 30_000; Date.now() < until; await new Promise((resolve) => setTimeout(resolve, 50))) {
            const record = JSON.parse((await redis.get(keys.primary)) ?? '{}') as { epoch?: number; primaryId?: string };
            if (record.primaryId === newPrimaryId && record.epoch) {
              epoch = record.epoch;
              break;
            }
          }
          if (!epoch) throw new Error(`${profile}: the bus never named ${newPrimaryId} the primary`);
          const sub = redis.duplicate();
          const finished = new Promise<number>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`${profile}: no switchover.finished within 60 s`)), 60_000);
            sub.on('message', (_c: string, m: string) => {
              const e = JSON.parse(m) as { type: string; writePauseMs?: number; ok?: boolean; detail?: string; error?: string };
              if (e.type === 'switchover.finished') {
                clearTimeout(timer);
                if (e.ok === false) reject(new Error(`${profile}: switchover failed: ${e.detail}`));
                else resolve(e.writePauseMs ?? -1);
              }
              if (e.type === 'remediation.failed') {
                clearTimeout(timer);
                reject(new Error(`${profile}: switchover job failed: ${e.error}`));
              }
            });
          });
          await sub.subscribe(keys.events);
          const w2 = writer(c.db);
          await new Promise((resolve) => setTimeout(resolve, 300));
          await queue.add('switchover', { cluster: 'bench', epoch, candidateId: target, maxWritePauseMs: 10_000 }, { jobId: `bench-switchover-${profile}-${run}` });
          pauses.push(await finished);
          await w2.stop();
          sub.disconnect();
          await queue.close();
          redis.disconnect();

          ctx.log(`${profile} run ${run + 1}/${ctx.runs}: kill -> first write ${recovery.at(-1)} ms, ${failedReads.at(-1)} failed reads of ${r.counts.ok + r.counts.failed}; switchover write pause ${Math.round(pauses.at(-1)!)} ms${r.counts.failed ? ` (read errors: ${[...r.counts.errors].map(([e, n]) => `${n}× ${e}`).join('; ')})` : ''}`);
        } finally {
          await c.close();
          await sandbox.stop();
        }
        hangRecovery.push(await hangDrill(profile));
        ctx.log(`${profile} run ${run + 1}/${ctx.runs}: primary hung -> first write elsewhere ${hangRecovery.at(-1)} ms`);
      }
      figures.push(
        { metric: `${profile}: kill -9 -> first successful write`, unit: 'ms', summary: summarize(recovery) },
        { metric: `${profile}: failed reads during the failover`, unit: 'reads', summary: summarize(failedReads) },
        { metric: `${profile}: switchover write pause`, unit: 'ms', summary: summarize(pauses) },
        { metric: `${profile}: primary hung (SIGSTOP) -> first write elsewhere`, unit: 'ms', summary: summarize(hangRecovery) },
      );
    }
    return figures;
  },
};
