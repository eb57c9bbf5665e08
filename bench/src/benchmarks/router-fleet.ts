import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BusPublisher } from '@pgreplica/bus';
import { busKeys, type NodeState, type Topology } from '@pgreplica/protocol';
import { freePort, startSandbox } from '@pgreplica/sandbox';
import { Redis } from 'ioredis';
import type { ChildMessage } from '../fleet/child.js';
import { quantile, summarize } from '../stats.js';
import { type Benchmark, type Figure, withRatio } from '../types.js';

const KEY = 'bench-fleet-key-0123456789abcdef';
const CLUSTER = 'fleet';
const CHILD = fileURLToPath(new URL('../fleet/child.js', import.meta.url));
/** Routers per process: a few processes, as a fleet of app instances would be. */
const PER_PROCESS = 250;

/** Redis INFO as a map of its fields. */
async function info(redis: Redis): Promise<Map<string, string>> {
  const text = await redis.info('all');
  return new Map(text.split('\r\n').filter((l) => l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]));
}
const cpuSeconds = (i: Map<string, string>) => Number(i.get('used_cpu_sys') ?? 0) + Number(i.get('used_cpu_user') ?? 0);
const getCalls = (i: Map<string, string>) => Number(/calls=(\d+)/.exec(i.get('cmdstat_get') ?? '')?.[1] ?? 0);

/** A fleet of router processes and what they report. */
class Fleet {
  readonly #children: ChildProcess[] = [];
  readonly #waiting = new Map<string, { need: number; at: number[]; done: () => void }>();
  readonly #early = new Map<string, number[][]>();

  static async start(url: string, total: number): Promise<Fleet> {
    const fleet = new Fleet();
    const ready: Promise<void>[] = [];
    for (let left = total; left > 0; left -= PER_PROCESS) {
      const count = Math.min(PER_PROCESS, left);
      const child = fork(CHILD, [JSON.stringify({ url, cluster: CLUSTER, key: KEY, count })], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
      fleet.#children.push(child);
      ready.push(new Promise((resolve) => child.once('message', () => resolve())));
      child.on('message', (m: ChildMessage) => {
        if (m.kind !== 'seen') return;
        const waiter = fleet.#waiting.get(m.marker);
        if (!waiter) {
          fleet.#early.set(m.marker, [...(fleet.#early.get(m.marker) ?? []), m.at]);
          return;
        }
        waiter.at.push(...m.at);
        if (--waiter.need === 0) waiter.done();
      });
    }
    await Promise.all(ready);
    return fleet;
  }

  /** When each router showed `marker` (ms since epoch), once every process reported it. */
  seen(marker: string, timeoutMs: number): Promise<number[]> {
    return new Promise((resolve, reject) => {
      const at: number[] = [];
      let need = this.#children.length;
      for (const early of this.#early.get(marker) ?? []) {
        at.push(...early);
        need--;
      }
      this.#early.delete(marker);
      if (need === 0) return resolve(at);
      const timer = setTimeout(() => {
        this.#waiting.delete(marker);
        for (const c of this.#children) c.send({ kind: 'count', marker });
        reject(new Error(`${marker}: ${this.#children.length - need} of ${this.#children.length} processes reported within ${timeoutMs} ms (routers left behind)`));
      }, timeoutMs);
      this.#waiting.set(marker, {
        need,
        at,
        done: () => {
          clearTimeout(timer);
          this.#waiting.delete(marker);
          resolve(at);
        },
      });
    });
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.#children.map(
        (c) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => c.kill('SIGKILL'), 5_000);
            c.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            c.send({ kind: 'stop' });
          }),
      ),
    );
  }
}

function node(id: string, port: number, primary: boolean, lagMs: number): NodeState {
  const now = new Date().toISOString();
  return {
    id, host: '127.0.0.1', port, role: primary ? 'primary' : 'replica', status: 'healthy', reason: 'ok', priority: 0, weight: 1, tags: [],
    lagBytes: 0, lagMs, replayLsn: '0/3000060', receiveLsn: '0/3000060', timeline: 1, lastCheckAt: now, since: now, consecutiveFailures: 0,
  };
}

/**
 * Convergence of a fleet of routers (each with its own subscription, 250 per
 * process): from the publisher's call to each router's `topology` event, for
 * a node.status and a primary.changed, at 1 (the baseline), 100, 500 and
 * 1,000 routers; Redis memory per router and CPU per event; and a reconnect
 * storm — Redis restarted empty with every router connected: how long until
 * all are back and converge again, and how many snapshot reads that took.
 */
export const routerFleet: Benchmark = {
  name: 'router-fleet',
  description: 'node.status / primary.changed convergence p50/p99/max over 1, 100, 500, 1000 routers; Redis memory and CPU; reconnect storm',
  async run(ctx) {
    const sizes = ctx.quick ? [1, 100] : [1, 100, 500, 1_000];
    const events = ctx.quick ? 5 : 20;
    const sandbox = await startSandbox({ replicas: 0, redis: true });
    const url = sandbox.redis!.url;
    const keys = busKeys(CLUSTER);
    const figures: Figure[] = [];
    const ports = [await freePort(), await freePort(), await freePort()];
    let pub = new Redis(url, { maxRetriesPerRequest: null });
    pub.on('error', () => {});
    let term = 1;
    let epoch = 1;
    let primary = 0;
    let lag = 0;
    const topology = (): Topology => ({
      cluster: CLUSTER, epoch, primaryId: `n${primary}`, systemIdentifier: '7000000000000000000', observedAt: new Date().toISOString(), heartbeatMs: 1_000,
      nodes: ports.map((p, i) => node(`n${i}`, p, i === primary, i === 1 ? lag : 0)),
    });
    const publisher = () => {
      const p = new BusPublisher({ redis: pub, keys, cluster: CLUSTER, instanceId: 'bench-monitor', key: KEY, streamMaxLen: 1_000 });
      p.setTerm(term);
      return p;
    };
    let bus = publisher();
    // The publisher stands in for the monitor leader: the lease and its term, as the monitor holds them.
    await pub.mset(keys.leader, 'bench-monitor', keys.term, String(term));
    if ((await bus.publish('snapshot', { topology: topology() }, epoch)).outcome !== 'published') throw new Error('the bench publisher is not the leader: nothing would reach the routers');
    // The monitor's heartbeat: a snapshot every second keeps every router fresh.
    let beating = true;
    const heartbeat = (async () => {
      while (beating) {
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        if (beating) await bus.publish('snapshot', { topology: topology() }, epoch).catch(() => {});
      }
    })();
    const base: Record<string, { p50: number; p99: number }> = {};
    try {
      for (const size of sizes) {
        const before = await info(pub);
        const fleet = await Fleet.start(url, size);
        try {
          await fleet.seen(`epoch:${epoch}`, 60_000);
          const after = await info(pub);
          const status: number[] = [];
          const changed: number[] = [];
          const cpuBefore = cpuSeconds(await info(pub));
          for (let i = 0; i < events; i++) {
            lag = 1_000 + size + i;
            const t0 = Date.now();
            const current = topology();
            await bus.publish('node.status', { nodeId: 'n1', from: 'healthy', to: 'healthy', reason: 'ok', node: current.nodes[1]! }, epoch);
            status.push(...(await fleet.seen(`lag:${lag}`, 10_000)).map((t) => t - t0));
            if (i % 4 === 0) {
              const from = primary;
              epoch += 1;
              primary = primary === 0 ? 1 : 0;
              const t1 = Date.now();
              await bus.publish('primary.changed', { fromId: `n${from}`, toId: `n${primary}`, cause: 'switchover' }, epoch);
              await bus.publish('snapshot', { topology: topology() }, epoch);
              changed.push(...(await fleet.seen(`epoch:${epoch}`, 10_000)).map((t) => t - t1));
            }
          }
          const cpuPerEvent = ((cpuSeconds(await info(pub)) - cpuBefore) * 1_000) / (events + changed.length / size);
          const memPerRouter = (Number(after.get('used_memory')) - Number(before.get('used_memory'))) / size;
          const clients = Number(after.get('connected_clients')) - Number(before.get('connected_clients'));
          const s = { p50: quantile(status, 0.5), p99: quantile(status, 0.99), max: Math.max(...status) };
          const c = { p50: quantile(changed, 0.5), p99: quantile(changed, 0.99), max: Math.max(...changed) };
          ctx.log(
            `${size} routers (${clients} Redis connections): node.status p50 ${s.p50} / p99 ${s.p99} / max ${s.max} ms; primary.changed p50 ${c.p50} / p99 ${c.p99} / max ${c.max} ms; ` +
              `Redis ${(memPerRouter / 1024).toFixed(1)} KB per router, ${cpuPerEvent.toFixed(2)} ms CPU per event`,
          );
          if (size === 1) {
            base.status = s;
            base.changed = c;
            figures.push({ metric: '1 router: node.status p50', unit: 'ms', summary: summarize([s.p50]) });
            figures.push({ metric: '1 router: primary.changed p50', unit: 'ms', summary: summarize([c.p50]) });
            continue;
          }
          const b = { metric: '1 router: node.status p50', summary: summarize([base.status!.p50]) };
          const bc = { metric: '1 router: primary.changed p50', summary: summarize([base.changed!.p50]) };
          figures.push(withRatio(`${size} routers: node.status p50`, 'ms', summarize([s.p50]), b));
          figures.push(withRatio(`${size} routers: node.status p99`, 'ms', summarize([s.p99]), b));
          figures.push({ metric: `${size} routers: node.status max`, unit: 'ms', summary: summarize([s.max]) });
          figures.push(withRatio(`${size} routers: primary.changed p99`, 'ms', summarize([c.p99]), bc));
          figures.push({ metric: `${size} routers: Redis memory per router`, unit: 'KB', summary: summarize([memPerRouter / 1024]) });
          figures.push({ metric: `${size} routers: Redis CPU per event`, unit: 'ms', summary: summarize([cpuPerEvent]) });

          if (size === sizes.at(-1)) {
            // Reconnect storm: Redis restarts empty under every router.
            beating = false;
            await heartbeat;
            pub.disconnect();
            const stoppedAt = Date.now();
            await sandbox.redis!.restart();
            const upAt = Date.now();
            pub = new Redis(url, { maxRetriesPerRequest: null });
            pub.on('error', () => {});
            const target = 2 * size;
            let backAt = 0;
            while (Date.now() - upAt < 60_000) {
              const i = await info(pub);
              if (Number(i.get('connected_clients')) - 1 >= target) {
                backAt = Date.now();
                break;
              }
              await new Promise((resolve) => setTimeout(resolve, 50));
            }
            ctx.log(`reconnect storm: Redis down ${upAt - stoppedAt} ms; ${backAt ? `all ${size} routers reconnected ${backAt - upAt} ms after it was back` : `NOT all ${size} routers reconnected within 60 s`}`);
            // A new monitor term on the empty Redis; every router must follow it.
            term += 1;
            bus = publisher();
            await pub.mset(keys.leader, 'bench-monitor', keys.term, String(term));
            epoch += 1;
            const t2 = Date.now();
            await bus.publish('snapshot', { topology: topology() }, epoch);
            const again = (await fleet.seen(`epoch:${epoch}`, 30_000)).map((t) => t - t2);
            const reads = getCalls(await info(pub));
            ctx.log(`reconnect storm: ${(reads / size).toFixed(2)} snapshot reads per router; the next snapshot reached all in p99 ${quantile(again, 0.99)} ms`);
            figures.push({ metric: `storm: ${size} routers reconnected after`, unit: 'ms', summary: summarize([backAt ? backAt - upAt : Number.POSITIVE_INFINITY]) });
            figures.push({ metric: 'storm: snapshot reads per router', unit: 'reads', summary: summarize([reads / size]) });
            figures.push({ metric: 'storm: next snapshot p99', unit: 'ms', summary: summarize([quantile(again, 0.99)]) });
          }
        } finally {
          await fleet.stop();
        }
      }
      return figures;
    } finally {
      beating = false;
      await heartbeat;
      pub.disconnect();
      await sandbox.stop();
    }
  },
};
