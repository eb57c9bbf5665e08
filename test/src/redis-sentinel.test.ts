import type { Monitor } from '@pgreplica/monitor';
import type { Router } from '@pgreplica/router-client';
import { type RedisSentinelGroup, type Sandbox, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, writeConfig } from './cli-fixture.js';
import { eventually } from './helpers.js';
import { BusRecorder, startMonitor, streamEvents } from './monitor-fixture.js';
import { missingOn, routerSees, startRouter, writeLoop } from './router-fixture.js';
import { TcpProxy } from './tcp-proxy.js';
import { clusterConfig, startWorker, workerEnv } from './worker-fixture.js';

const BUS_KEY = 'redis-sentinel-test-bus-key-0123';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Reads through a router until stopped; counts what failed. */
function readLoop(db: Router) {
  let running = true;
  let ok = 0;
  const failures: string[] = [];
  const loop = (async () => {
    while (running) {
      try {
        await db.read('SELECT 1');
        ok++;
      } catch (err) {
        failures.push((err as Error).message);
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
  })();
  return {
    failures,
    ok: () => ok,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

describe('Redis Sentinel: monitor, worker, CLI and routers by sentinel name', () => {
  let sandbox: Sandbox;
  let sentinel: RedisSentinelGroup;
  let monitor: Monitor;
  let worker: RemediationWorker;
  let routers: Router[];
  let bus: BusRecorder;
  let configPath: string;
  let env: NodeJS.ProcessEnv;

  /** Monitors started by a test, closed at the end. */
  const leaders: Monitor[] = [];
  const term = async (m: Monitor = monitor) => ((await (await fetch(`http://127.0.0.1:${m.httpPort}/health`)).json()) as { term: number }).term;

  beforeAll(async () => {
    // Five Redis replicas: five tests kill a master (a restarted one takes a while to rejoin), the last kills the last one.
    sandbox = await startSandbox({ replicas: 2, redis: 'sentinel', redisSentinel: { replicas: 5 } });
    sentinel = sandbox.redisSentinel!;
    const config = clusterConfig(sandbox);
    expect(config.redis).toEqual({ sentinels: sentinel.target.sentinels, name: 'pgreplica' });
    monitor = await startMonitor(sandbox, { failover: config.failover, worker: config.worker }, BUS_KEY);
    worker = await startWorker(sandbox, {}, BUS_KEY);
    bus = await BusRecorder.start(sentinel.target, 'main', BUS_KEY);
    const options = { busKey: BUS_KEY, redis: sentinel.target, maxWritePauseMs: 30_000, pool: { max: 4, query_timeout: 5_000 } };
    routers = [await startRouter(sandbox, options), await startRouter(sandbox, options)];
    for (const r of routers) await routerSees(r, (x) => x.getTopology().topology?.nodes.every((n) => n.status === 'healthy') === true, 20_000, 'all healthy');
    await routers[0]!.query('CREATE TABLE ledger (id int PRIMARY KEY)');
    configPath = writeConfig(sandbox.baseDir, 'cli.json', config);
    env = workerEnv(sandbox, BUS_KEY);
  });
  afterAll(async () => {
    for (const r of routers ?? []) await r.close();
    await worker?.close();
    await monitor?.close();
    for (const m of leaders) await m.close();
    await bus?.close();
    await sandbox?.stop();
  });

  it('the CLI reads the status by sentinel name', async () => {
    const status = await cli(['--config', configPath, 'status', '--json'], env);
    expect(status.err).toBe('');
    const parsed = JSON.parse(status.out) as { leader: string; topology: { nodes: { id: string }[] } };
    expect(parsed.topology.nodes.map((n) => n.id).sort()).toEqual(['p1', 'r1', 'r2']);
  });

  it('a planned failover (SENTINEL FAILOVER) under load: the old master becomes a replica, everyone follows, no write fails', async () => {
    await sentinel.waitForReplicas(20_000);
    const writes = writeLoop(routers[0]!, sandbox, 2, 2_000_000);
    await sleep(500);
    const since = bus.events.length;
    const old = await sentinel.master();
    const startedAt = Date.now();
    await sentinel.sentinels[0]!.call('SENTINEL', 'FAILOVER', sentinel.name);
    await sentinel.waitForMaster((m) => m !== old, 20_000);
    const switchedAt = Date.now();
    // The demoted master's clients are cut (sentinel: CLIENT KILL TYPE normal) and ask the sentinels again.
    const snapshot = await bus.waitFor((e) => e.type === 'snapshot' && Date.parse(e.at) > switchedAt, 20_000, 'a snapshot after the switch', since);
    for (const r of routers) await routerSees(r, (x) => Date.parse(x.getTopology().topology?.observedAt ?? '') >= Date.parse(snapshot.at), 20_000, 'the snapshot after the switch');
    const convergedAt = Date.now();
    await writes.stop();
    process.stderr.write(
      `[redis-sentinel] SENTINEL FAILOVER -> sentinels agree: ${switchedAt - startedAt} ms; -> routers on a later snapshot: ${convergedAt - startedAt} ms (term ${snapshot.term}); writes ${writes.acked.length} (failed ${writes.failures.length})\n`,
    );
    expect(monitor.isLeader).toBe(true);
    expect(writes.failures).toEqual([]);
    expect(await missingOn(sandbox, 'p1', writes.acked.map((a) => a.id))).toEqual([]);
    expect(bus.outOfOrder).toEqual([]);
    // The old master follows the new one: the group can fail over again.
    await sentinel.waitForReplicas(20_000);
    expect(sentinel.replicasOf(await sentinel.master())).toContain(old);
  });

  it('Redis master killed under load: the monitor leads again at a higher term, routers converge, no write fails', async () => {
    await sentinel.waitForReplicas(20_000);
    const writes = writeLoop(routers[0]!, sandbox, 2);
    const reads = readLoop(routers[1]!);
    let stopWatching!: () => void;
    const watching = cli(['--config', configPath, 'watch', '--json'], env, new Promise<void>((resolve) => (stopWatching = resolve)));
    await sleep(500);
    const termBefore = await term();
    const since = bus.events.length;
    const old = await sentinel.master();
    const killedAt = Date.now();
    await old.kill();
    const master = await sentinel.waitForMaster((m) => m !== old, 20_000);
    const failedOverAt = Date.now();
    await eventually(async () => monitor.isLeader && (await term()) > termBefore, 20_000, 'the monitor leading at a higher term');
    const leadingAt = Date.now();
    const snapshot = await bus.waitFor((e) => e.type === 'snapshot' && e.term > termBefore, 20_000, 'a snapshot of the new term', since);
    for (const r of routers) await routerSees(r, (x) => Date.parse(x.getTopology().topology?.observedAt ?? '') >= Date.parse(snapshot.at), 20_000, 'the new term');
    const convergedAt = Date.now();

    // A change after the failover reaches every router (their subscriptions moved to the new master).
    sandbox.node('r2').pause();
    try {
      for (const r of routers) await routerSees(r, (x) => x.getTopology().topology?.nodes.find((n) => n.id === 'r2')?.status === 'unhealthy', 20_000, 'r2 unhealthy');
    } finally {
      sandbox.node('r2').resume();
    }
    for (const r of routers) await routerSees(r, (x) => x.getTopology().topology?.nodes.every((n) => n.status === 'healthy') === true, 20_000, 'all healthy again');
    await writes.stop();
    await reads.stop();
    stopWatching();
    const watched = await watching;

    process.stderr.write(
      `[redis-sentinel] master kill -> sentinels agree on ${master.port}: ${failedOverAt - killedAt} ms; -> monitor leads at term ${await term()} (was ${termBefore}): ${leadingAt - killedAt} ms; -> routers on the new term: ${convergedAt - killedAt} ms; writes ${writes.acked.length} (failed ${writes.failures.length}), reads ${reads.ok()} (failed ${reads.failures.length})\n`,
    );
    // The query path never touches Redis.
    expect(writes.failures).toEqual([]);
    expect(reads.failures).toEqual([]);
    expect(await missingOn(sandbox, 'p1', writes.acked.map((a) => a.id))).toEqual([]);
    // pgreplica watch followed the master: said so, and printed the new term's events.
    expect(watched.err).toContain('lost the connection to Redis');
    expect(watched.err).toContain('reconnected to Redis');
    const terms = watched.out.trim().split('\n').map((line) => (JSON.parse(line) as { term: number }).term);
    expect(Math.max(...terms)).toBeGreaterThan(termBefore);
    const status = await cli(['--config', configPath, 'status', '--json'], env);
    expect(status.err).toBe('');
    expect(bus.outOfOrder).toEqual([]);
    expect(bus.rejected).toEqual([]);
  });

  it('a PostgreSQL failover during the Redis failover completes once Redis is back: one promotion, one writable node', async () => {
    await sentinel.waitForReplicas(20_000);
    const writes = writeLoop(routers[0]!, sandbox, 2, 1_000_000);
    await sleep(500);
    const old = await sentinel.master();
    const killedAt = Date.now();
    await Promise.all([old.kill(), sandbox.primary.kill()]);
    await sentinel.waitForMaster((m) => m !== old, 20_000);
    // The recorder's subscription may miss what the worker published while it was reconnecting: the stream has it.
    const since = async () => (await streamEvents(sentinel.target, 'main', BUS_KEY)).filter((e) => Date.parse(e.at) >= killedAt);
    await eventually(async () => (await since()).some((e) => e.type === 'primary.changed'), 60_000, 'primary.changed');
    const changed = (await since()).find((e) => e.type === 'primary.changed');
    const toId = changed?.type === 'primary.changed' ? changed.toId : '';
    expect(['r1', 'r2']).toContain(toId);
    await eventually(() => writes.acked.some((a) => a.node === toId), 30_000, 'a write on the new primary');
    const firstWrite = writes.acked.find((a) => a.node === toId)!;
    // Time for a second promotion, if anything were to run one.
    await sleep(4_000);
    await writes.stop();
    const events = await since();
    const at = (type: string) => Date.parse(events.find((e) => e.type === type)?.at ?? '') - killedAt;
    process.stderr.write(
      `[redis-sentinel] Redis master and PostgreSQL primary killed -> failover.started ${at('failover.started')} ms, primary.changed ${at('primary.changed')} ms, first write on ${toId}: ${firstWrite.at - killedAt} ms; failed writes ${writes.failures.length}: ${JSON.stringify([...new Set(writes.failures)].slice(0, 5))}\n`,
    );

    expect(events.filter((e) => e.type === 'primary.changed').map((e) => e.epoch)).toEqual([2]);
    expect(events.filter((e) => e.type === 'failover.started')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'failover.finished')).toHaveLength(1);
    const writable = await Promise.all(['r1', 'r2'].map(async (id) => !(await sandbox.node(id).isInRecovery())));
    expect(writable.filter(Boolean)).toHaveLength(1);
    expect(await missingOn(sandbox, toId, writes.acked.filter((a) => a.node === toId).map((a) => a.id))).toEqual([]);
    for (const r of routers) await routerSees(r, (x) => x.getWriteTarget().nodeId === toId, 15_000, `writes on ${toId}`);
    expect(bus.outOfOrder).toEqual([]);
    expect(bus.rejected).toEqual([]);
  });

  /**
   * A lease taken on the Redis master and lost with it: monitor B takes the
   * lease (a new term) while no Redis replica gets X's writes (with `acked`,
   * while X still counts them connected), publishes, and dies with the
   * Redis master X. With `floorKept` false, B cannot reach
   * the PostgreSQL primary meanwhile, so no term floor is kept there. Monitor
   * A, started after the failover, knows only what Redis and the databases
   * kept. `current` is the leader before (closed here); A is the leader after.
   */
  async function loseALease(current: Monitor, monitorOverrides: Record<string, unknown>, floorKept: boolean, acked = false) {
    const primaryId = current.topology!.primaryId!;
    const proxy = await TcpProxy.start(sandbox.node(primaryId).port);
    const viaProxy = sandbox.nodes.map((n, i) => ({ id: n.id, host: n.host, port: n.id === primaryId ? proxy.port : n.port, priority: i }));
    const b = await startMonitor(sandbox, { instanceId: 'monitor-b', nodes: viaProxy, ...monitorOverrides }, BUS_KEY);
    const x = await sentinel.master();
    const replicas = sentinel.replicasOf(x).filter((r) => r.running);
    try {
      await sentinel.waitForReplicas(20_000);
      await sleep(1_000);
      expect(b.isLeader).toBe(false);
      const termBefore = await term(current);
      const since = bus.events.length;
      for (const r of replicas) r.pause();
      // Stopped replicas still get what X sends into their sockets (read when they resume): to lose X's writes, X also drops the
      // links. With ackReplicas, X keeps them: replicas X counts as connected that do not acknowledge (a partition).
      if (!acked) await x.call('CLIENT', 'KILL', 'TYPE', 'replica');
      if (!floorKept) proxy.cutOff();
      await current.close();
      // B may lead now, on X only; what it publishes reaches the subscribers.
      await sleep(3_000);
      const bEvents = bus.events.slice(since).filter((e) => e.term > termBefore);
      const bTerm = Math.max(0, ...bEvents.map((e) => e.term));
      await x.kill();
      await b.close();
      for (const r of replicas) r.resume();
      await sentinel.waitForMaster((m) => m !== x, 20_000);
      const afterFailover = bus.events.length;
      const a = await startMonitor(sandbox, { instanceId: 'monitor-a', ...monitorOverrides }, BUS_KEY);
      leaders.push(a);
      await eventually(() => a.isLeader, 20_000, 'monitor A leading');
      const snapshot = await bus.waitFor((e) => e.type === 'snapshot', 10_000, 'a snapshot from A', afterFailover);
      // Whether the routers took A's snapshot (measured, not asserted here).
      const adopted = await Promise.all(
        routers.map((r) => routerSees(r, (v) => Date.parse(v.getTopology().topology?.observedAt ?? '') >= Date.parse(snapshot.at), 3_000).then(() => true, () => false)),
      );
      return { termBefore, bTerm, bEvents: bEvents.length, aTerm: snapshot.term, outOfOrder: bus.outOfOrder.filter((e) => e.term > termBefore).length, routersOnA: adopted.filter(Boolean).length, snapshot };
    } finally {
      for (const r of replicas) if (r.running) r.resume();
      await b.close();
      await proxy.close();
    }
  }

  it('a lease lost with the Redis master: with monitor.leader.ackReplicas 1 it was never used; the next leader takes a term nobody published under', async () => {
    const result = await loseALease(monitor, { monitor: { leader: { ackReplicas: 1 } } }, false, true);
    process.stderr.write(`[redis-sentinel] lost lease, ackReplicas 1, no floor: ${JSON.stringify({ ...result, snapshot: undefined })}\n`);
    // B took the lease on X, but no replica acknowledged it: it never published.
    expect(result.bEvents).toBe(0);
    expect(result.aTerm).toBeGreaterThan(result.termBefore);
    expect(result.outOfOrder).toBe(0);
    for (const r of routers) await routerSees(r, (x) => Date.parse(x.getTopology().topology?.observedAt ?? '') >= Date.parse(result.snapshot.at), 20_000, "A's snapshot");
  });

  it('a lease lost with the Redis master: without ackReplicas, the term floor B kept in PostgreSQL sends the next leader past its term', async () => {
    const result = await loseALease(leaders.at(-1)!, {}, true);
    process.stderr.write(`[redis-sentinel] lost lease, ackReplicas 0, floor kept: ${JSON.stringify({ ...result, snapshot: undefined })}\n`);
    expect(result.bEvents).toBeGreaterThan(0);
    expect(result.aTerm).toBeGreaterThan(result.bTerm);
    expect(result.outOfOrder).toBe(0);
    for (const r of routers) await routerSees(r, (x) => Date.parse(x.getTopology().topology?.observedAt ?? '') >= Date.parse(result.snapshot.at), 20_000, "A's snapshot");
  });

  it('a lease lost with the Redis master: without ackReplicas and without the floor, the next leader reuses its term', async () => {
    const result = await loseALease(leaders.at(-1)!, {}, false);
    process.stderr.write(`[redis-sentinel] lost lease, ackReplicas 0, no floor: ${JSON.stringify({ ...result, snapshot: undefined })}\n`);
    expect(result.bEvents).toBeGreaterThan(0);
    // The hazard ackReplicas closes: A publishes under B's term from seq 1, which subscribers that saw B's events take as old.
    expect(result.aTerm).toBe(result.bTerm);
    expect(result.outOfOrder).toBeGreaterThan(0);
  });

  it('the worker stops at once while Redis is away (BullMQ would wait for a connection that waits to reconnect)', async () => {
    // The last Redis server: no failover this time.
    const master = await sentinel.master();
    expect(sentinel.replicasOf(master).filter((r) => r.running)).toEqual([]);
    await master.kill();
    await sleep(500);
    await Promise.race([worker.close(), sleep(10_000)]);
    expect(worker.status).toBe('stopped');
    // The CLI says where it looked.
    const status = await cli(['--config', configPath, 'status'], env);
    expect(status.code).toBe(3);
    expect(status.err).toMatch(/Redis at the master "pgreplica" of sentinels 127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+ does not answer/);
  });
});
