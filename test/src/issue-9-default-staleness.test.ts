import type { Monitor } from '@pgreplica/monitor';
import { createRouter, type Router, type RouterEventMap, RouterError } from '@pgreplica/router-client';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';
import { BusRecorder, DOCUMENTED_MONITOR, startMonitor } from './monitor-fixture.js';

const IDLE_MS = 60_000;
/** App instances: each router checks its freshness on its own timer, so together they sample every moment. */
const FLEET = 20;

/** A router on the sandbox's bus that records its `fallback` and `error` events; not waited for. */
function recordingRouter(sandbox: Sandbox, staleAfterMs?: number) {
  const db = createRouter({
    cluster: 'main',
    redis: sandbox.redis!.url,
    connection: { user: 'postgres', password: sandbox.primary.connectionConfig.password as string, database: 'postgres' },
    ...(staleAfterMs === undefined ? {} : { staleAfterMs }),
  });
  const fallbacks: RouterEventMap['fallback'][0][] = [];
  const errors: Error[] = [];
  db.on('fallback', (state) => fallbacks.push(state));
  db.on('error', (err) => errors.push(err));
  return { db, fallbacks, errors };
}

// Issue 9, items 1 and 13. Before the fix a router's staleness bound
// defaulted to 5 s, the monitor's documented heartbeat: an idle cluster (a
// snapshot every 5-6 s) flipped every router into its fallback and back,
// all day; and a router that had not heard the bus yet counted as stale
// (age: infinity) and said so at once.
describe('issue 9: the documented defaults never flip routers into fallback', () => {
  let sandbox: Sandbox;
  let monitor: Monitor | undefined;
  let bus: BusRecorder;
  const routers: Router[] = [];

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 1 });
    bus = await BusRecorder.start(sandbox.redis!.url);
  });
  afterAll(async () => {
    await Promise.all(routers.map((r) => r.close()));
    await monitor?.close();
    await bus?.close();
    await sandbox?.stop();
  });

  it('a router started before any topology is starting, not stale; an idle minute costs a fleet of routers no fallback; a staleAfterMs below 3 heartbeats is raised with an error event', async () => {
    // Created before the monitor ever published: no topology on the bus yet.
    const early = recordingRouter(sandbox);
    const tight = recordingRouter(sandbox, 5_000);
    routers.push(early.db, tight.db);
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(early.db.getTopology().topology).toBeNull();
    expect(early.fallbacks).toEqual([]);
    expect(early.db.getTopology().fallback).toBe(false);

    monitor = await startMonitor(sandbox, DOCUMENTED_MONITOR);
    await Promise.all([early.db.ready(), tight.db.ready()]);
    await eventually(() => early.db.getTopology().topology?.nodes.every((n) => n.status === 'healthy') === true, 20_000, 'all healthy');
    // The explicit bound below what the monitor's heartbeat allows: refused, once, with a typed error.
    await eventually(() => tight.errors.length > 0, 10_000, 'an error event for staleAfterMs 5000');
    expect(tight.errors[0]).toBeInstanceOf(RouterError);
    expect(tight.errors[0]).toMatchObject({ code: 'invalid-option' });
    expect(tight.errors[0]!.message).toMatch(/staleAfterMs 5000 .*15000 ms/);

    // More app instances, started at staggered moments (their freshness timers out of phase).
    const fleet = [early];
    for (let i = 1; i < FLEET; i++) {
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 100));
      const r = recordingRouter(sandbox);
      routers.push(r.db);
      await r.db.ready();
      fleet.push(r);
    }

    const since = bus.events.length;
    const ages: number[] = [];
    const sampler = setInterval(() => ages.push(early.db.getTopology().ageMs), 250);
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
    clearInterval(sampler);

    const snapshots = bus.events.slice(since).filter((e) => e.type === 'snapshot').map((e) => Date.parse(e.at));
    const gaps = snapshots.slice(1).map((at, i) => at - snapshots[i]!);
    process.stderr.write(
      `[issue-9 staleness] idle ${IDLE_MS / 1000} s: ${snapshots.length} snapshots, gap max ${Math.max(...gaps)} ms; router topology age max ${Math.max(...ages)} ms; ` +
        `fallback events: ${FLEET} routers with the default ${fleet.reduce((n, r) => n + r.fallbacks.length, 0)}, staleAfterMs 5000 ${tight.fallbacks.length}; error events of the latter ${tight.errors.length}\n`,
    );
    // The monitor is as quiet as documented: a snapshot about every heartbeat, so a 5 s bound would flip.
    expect(snapshots.length).toBeGreaterThanOrEqual(8);
    expect(Math.max(...gaps)).toBeGreaterThanOrEqual(5_000);
    expect(fleet.flatMap((r) => r.fallbacks)).toEqual([]);
    expect(tight.fallbacks).toEqual([]);
    expect(tight.errors).toHaveLength(1);
    expect(fleet.flatMap((r) => r.errors)).toEqual([]);
    for (const r of [...fleet, tight]) expect(r.db.getTopology().fallback).toBe(false);
  });
});
