/**
 * One process of the router fleet benchmark: starts `count` routers, each
 * with its own Redis subscription (or, with `shared`, one bus connection pair
 * shared by them all), and reports to the parent, per marker, when each
 * router's topology showed it. Markers: a node's `lagMs` (node.status) and
 * the epoch (primary.changed).
 */
import { createRouter, type Router } from '@pgreplica/router-client';
import type { Topology } from '@pgreplica/protocol';

interface Start {
  url: string;
  cluster: string;
  key: string;
  count: number;
}

/** Messages to the parent. */
export type ChildMessage =
  | { kind: 'ready'; routers: number }
  | { kind: 'seen'; marker: string; at: number[] };

const start = JSON.parse(process.argv[2] ?? '{}') as Start;
const routers: Router[] = [];
const seen = new Map<string, number[]>();

function note(marker: string): void {
  const list = seen.get(marker) ?? [];
  list.push(Date.now());
  seen.set(marker, list);
  if (list.length === start.count) {
    process.send?.({ kind: 'seen', marker, at: list } satisfies ChildMessage);
    seen.delete(marker);
  }
}

for (let i = 0; i < start.count; i++) {
  const router = createRouter({ cluster: start.cluster, redis: start.url, busKey: start.key, routing: 'explicit', connection: { user: 'bench', database: 'bench' } });
  router.on('error', () => {});
  const last = { lag: -1, epoch: -1 };
  router.on('topology', (t: Topology) => {
    const lag = t.nodes.find((n) => n.id === 'n1')?.lagMs ?? -1;
    if (lag !== last.lag) {
      last.lag = lag;
      note(`lag:${lag}`);
    }
    if (t.epoch !== last.epoch) {
      last.epoch = t.epoch;
      note(`epoch:${t.epoch}`);
    }
  });
  routers.push(router);
}
process.send?.({ kind: 'ready', routers: routers.length } satisfies ChildMessage);

process.on('message', (m: { kind: string; marker?: string }) => {
  if (m.kind === 'count') {
    process.stderr.write(`fleet child ${process.pid}: ${seen.get(m.marker ?? '')?.length ?? 0} of ${start.count} routers saw ${m.marker}\n`);
    return;
  }
  if (m.kind !== 'stop') return;
  void Promise.all(routers.map((r) => r.close())).finally(() => process.exit(0));
});
process.on('disconnect', () => process.exit(0));
