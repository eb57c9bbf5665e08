import { BusPublisher } from '@pgreplica/bus';
import { busKeys, parseEvent, type Topology } from '@pgreplica/protocol';
import { startSandbox } from '@pgreplica/sandbox';
import { Redis } from 'ioredis';
import { quantile, summarize } from '../stats.js';
import { type Benchmark, withRatio } from '../types.js';

const KEY = 'bench-bus-key-0123456789abcdef';

function topology(nodes: number): Topology {
  return {
    cluster: 'bench',
    epoch: 1,
    primaryId: 'n0',
    systemIdentifier: '7000000000000000000',
    observedAt: new Date().toISOString(),
    nodes: Array.from({ length: nodes }, (_, i) => ({
      id: `n${i}`, host: '10.0.0.1', port: 5432, role: i === 0 ? 'primary' : 'replica', status: 'healthy', reason: 'ok',
      priority: i, weight: 1, tags: [], lagBytes: 0, lagMs: 0, replayLsn: '0/3000060', receiveLsn: '0/3000060', timeline: 1,
      lastCheckAt: new Date().toISOString(), since: new Date().toISOString(), consecutiveFailures: 0,
    })),
  };
}

/**
 * Event fan-out latency: from the monitor's publish call (signed, fenced
 * Lua script: PUBLISH + XADD + SET) to a subscriber's handler after parsing
 * and verifying the signature, for a 10-node snapshot; baseline: a raw
 * PUBLISH of the same bytes to a raw subscriber, in the same run.
 */
export const busFanout: Benchmark = {
  name: 'bus-fanout',
  description: 'publish -> subscriber handler latency, 10-node signed snapshot vs raw PUBLISH of the same bytes',
  async run(ctx) {
    const count = ctx.quick ? 200 : 1_000;
    const sandbox = await startSandbox({ replicas: 0, redis: true });
    const url = sandbox.redis!.url;
    const keys = busKeys('bench');
    const pub = new Redis(url);
    const sub = new Redis(url);
    const rawSub = new Redis(url);
    try {
      // The publisher stands in for the monitor leader: the lease and its term, as the monitor holds them.
      await pub.mset(keys.leader, 'bench-monitor', keys.term, '1');
      const publisher = new BusPublisher({ redis: pub, keys, cluster: 'bench', instanceId: 'bench-monitor', key: KEY, streamMaxLen: 10_000 });
      publisher.setTerm(1);
      let pending: ((t: number) => void) | undefined;
      sub.on('message', (_c: string, message: string) => {
        const parsed = parseEvent(message, { cluster: 'bench', key: KEY });
        if (!parsed.ok) throw new Error(`rejected: ${parsed.rejection}`);
        pending?.(performance.now());
      });
      rawSub.on('message', () => pending?.(performance.now()));
      await sub.subscribe(keys.events);
      await rawSub.subscribe('bench-raw');
      const payload = { topology: topology(10) };
      const bytes = JSON.stringify({ ...payload, pad: KEY });
      const p50: number[] = [];
      const p99: number[] = [];
      const raw50: number[] = [];
      const raw99: number[] = [];
      for (let run = 0; run < ctx.runs; run++) {
        const lat: number[] = [];
        const rawLat: number[] = [];
        for (let i = 0; i < count; i++) {
          let start = performance.now();
          let got = new Promise<number>((resolve) => (pending = resolve));
          await pub.publish('bench-raw', bytes);
          rawLat.push((await got) - start);
          start = performance.now();
          got = new Promise<number>((resolve) => (pending = resolve));
          if ((await publisher.publish('snapshot', payload, 1)).outcome !== 'published') throw new Error('the bench publisher is not the leader: the event was not published');
          lat.push((await got) - start);
        }
        p50.push(quantile(lat, 0.5));
        p99.push(quantile(lat, 0.99));
        raw50.push(quantile(rawLat, 0.5));
        raw99.push(quantile(rawLat, 0.99));
        ctx.log(`run ${run + 1}/${ctx.runs}: signed event p50 ${p50.at(-1)!.toFixed(3)} ms, raw p50 ${raw50.at(-1)!.toFixed(3)} ms`);
      }
      const b50 = { metric: 'raw PUBLISH p50', summary: summarize(raw50) };
      const b99 = { metric: 'raw PUBLISH p99', summary: summarize(raw99) };
      return [
        { metric: b50.metric, unit: 'ms', summary: b50.summary },
        withRatio('bus event p50', 'ms', summarize(p50), b50),
        { metric: b99.metric, unit: 'ms', summary: b99.summary },
        withRatio('bus event p99', 'ms', summarize(p99), b99),
      ];
    } finally {
      await Promise.all([pub.quit(), sub.quit(), rawSub.quit()].map((p) => p.catch(() => {})));
      await sandbox.stop();
    }
  },
};
