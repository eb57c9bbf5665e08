import type { Monitor } from '@pgreplica/monitor';
import { busKeys } from '@pgreplica/protocol';
import type { Router } from '@pgreplica/router-client';
import { type RedisClusterGroup, type Sandbox, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, writeConfig } from './cli-fixture.js';
import { BusRecorder, startMonitor, streamEvents } from './monitor-fixture.js';
import { missingOn, routerSees, startRouter, writeLoop } from './router-fixture.js';
import { clusterConfig, startWorker, workerEnv } from './worker-fixture.js';

const BUS_KEY = 'redis-cluster-test-bus-key-01234';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('Redis Cluster: monitor, worker, CLI and routers on three primaries', () => {
  let sandbox: Sandbox;
  let redisCluster: RedisClusterGroup;
  let monitor: Monitor;
  let worker: RemediationWorker;
  /** Cluster connections the app owns and hands to its routers. */
  let appRedis: Cluster[];
  let routers: Router[];
  let bus: BusRecorder;
  let configPath: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2, redis: 'cluster' });
    redisCluster = sandbox.redisCluster!;
    const config = clusterConfig(sandbox);
    expect(config.redis).toEqual(redisCluster.target);
    // ackReplicas 1: WAIT goes to the node of {main}'s slot (after the kill below, its new primary has no replica: no wait).
    monitor = await startMonitor(sandbox, { failover: config.failover, worker: config.worker, monitor: { leader: { ackReplicas: 1 } } }, BUS_KEY);
    worker = await startWorker(sandbox, {}, BUS_KEY);
    bus = await BusRecorder.start(redisCluster.target, 'main', BUS_KEY);
    appRedis = [new Cluster(redisCluster.target.cluster), new Cluster(redisCluster.target.cluster)];
    for (const c of appRedis) c.on('error', () => {});
    const options = { busKey: BUS_KEY, maxWritePauseMs: 30_000, pool: { max: 4, query_timeout: 5_000 } };
    routers = [await startRouter(sandbox, { ...options, redis: appRedis[0] }), await startRouter(sandbox, { ...options, redis: appRedis[1] })];
    for (const r of routers) await routerSees(r, (x) => x.getTopology().topology?.nodes.every((n) => n.status === 'healthy') === true, 20_000, 'all healthy');
    await routers[0]!.query('CREATE TABLE ledger (id int PRIMARY KEY)');
    configPath = writeConfig(sandbox.baseDir, 'cli.json', config);
    env = workerEnv(sandbox, BUS_KEY);
  });
  afterAll(async () => {
    for (const r of routers ?? []) await r.close();
    for (const c of appRedis ?? []) c.disconnect();
    await worker?.close();
    await monitor?.close();
    await bus?.close();
    await sandbox?.stop();
  });

  it('the CLI reads the status from the Cluster', async () => {
    const status = await cli(['--config', configPath, 'status', '--json'], env);
    expect(status.err).toBe('');
    const parsed = JSON.parse(status.out) as { topology: { nodes: { id: string }[] } };
    expect(parsed.topology.nodes.map((n) => n.id).sort()).toEqual(['p1', 'r1', 'r2']);
    const events = await cli(['--config', configPath, 'events', '--since', '1m', '--json'], env);
    expect(events.err).toBe('');
    expect(events.out).toContain('"type":"snapshot"');
    const watched = await cli(['--config', configPath, 'watch', '--json'], env, sleep(2_500).then(() => {}));
    expect(watched.err).toBe('');
    expect(watched.out).toContain('"type":"snapshot"');
  });

  it("the slot of {main} moves to its replica (CLUSTER FAILOVER) under load: routers converge, writes go on, nothing lost or duplicated; the worker's queue works after", async () => {
    const slot = await redisCluster.slotOf(busKeys('main').leader);
    const before = await redisCluster.shardOf(slot);
    const writes = writeLoop(routers[0]!, sandbox, 2);
    await sleep(1_000);
    const since = bus.events.length;
    const movedAt = Date.now();
    const primary = await redisCluster.failover(slot);
    const settledAt = Date.now();
    expect(primary).not.toBe(before.primary);
    expect(before.replicas).toContain(primary);

    // A change after the move reaches every router.
    sandbox.node('r2').pause();
    try {
      for (const r of routers) await routerSees(r, (x) => x.getTopology().topology?.nodes.find((n) => n.id === 'r2')?.status === 'unhealthy', 20_000, 'r2 unhealthy');
    } finally {
      sandbox.node('r2').resume();
    }
    const changedAt = Date.now();
    for (const r of routers) await routerSees(r, (x) => x.getTopology().topology?.nodes.every((n) => n.status === 'healthy') === true, 20_000, 'all healthy again');
    await writes.stop();
    process.stderr.write(
      `[redis-cluster] slot ${slot} moved to 127.0.0.1:${primary.port} in ${settledAt - movedAt} ms; a node.status after it reached both routers ${changedAt - settledAt} ms after; writes ${writes.acked.length} (failed ${writes.failures.length})\n`,
    );

    expect(writes.failures).toEqual([]);
    const ids = writes.acked.map((a) => a.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(await missingOn(sandbox, 'p1', ids)).toEqual([]);
    // Every event the recorder saw around the move is in the stream once, in order.
    const stream = await streamEvents(redisCluster.target, 'main', BUS_KEY);
    const positions = stream.map((e) => `${e.term}/${e.seq}`);
    expect(new Set(positions).size).toBe(positions.length);
    for (const e of bus.events.slice(since)) expect(positions).toContain(`${e.term}/${e.seq}`);
    expect(bus.outOfOrder).toEqual([]);
    expect(bus.rejected).toEqual([]);

    // BullMQ on the moved slot: a switchover through the CLI and the worker.
    const switched = await cli(['--config', configPath, 'switchover', '--to', 'r1', '--wait', '--json'], env);
    expect(switched.err).toBe('');
    expect(JSON.parse(switched.out)).toMatchObject({ result: { outcome: 'switched', primaryId: 'r1' } });
    for (const r of routers) await routerSees(r, (x) => x.getWriteTarget().nodeId === 'r1', 15_000, 'writes on r1');
    await routers[0]!.write('INSERT INTO ledger (id) VALUES (-1)');
  });

  it('the primary serving {main} killed -9: its replica takes the slot, the monitor leads again, routers converge, writes go on', async () => {
    const slot = await redisCluster.slotOf(busKeys('main').leader);
    const before = await redisCluster.shardOf(slot);
    const health = async () => (await (await fetch(`http://127.0.0.1:${monitor.httpPort}/health`)).json()) as { term: number; leader: boolean };
    const termBefore = (await health()).term;
    const writes = writeLoop(routers[0]!, sandbox, 2, 1_000_000);
    await sleep(500);
    const since = bus.events.length;
    const killedAt = Date.now();
    await before.primary.kill();
    // cluster-node-timeout, then the replica's election.
    const deadline = Date.now() + 30_000;
    let owner = before.primary;
    while (owner === before.primary || !owner.running) {
      if (Date.now() > deadline) throw new Error(`slot ${slot} not taken over within 30 s`);
      await sleep(100);
      owner = await redisCluster.shardOf(slot).then((s) => s.primary, () => before.primary);
    }
    const takenAt = Date.now();
    const snapshot = await bus.waitFor((e) => e.type === 'snapshot' && Date.parse(e.at) > takenAt, 30_000, 'a snapshot after the takeover', since);
    for (const r of routers) await routerSees(r, (x) => Date.parse(x.getTopology().topology?.observedAt ?? '') >= Date.parse(snapshot.at), 20_000, 'the snapshot after the takeover');
    const convergedAt = Date.now();
    await writes.stop();
    const after = await health();
    process.stderr.write(
      `[redis-cluster] primary of slot ${slot} killed -> replica 127.0.0.1:${owner.port} serves it: ${takenAt - killedAt} ms; -> routers on a later snapshot: ${convergedAt - killedAt} ms; term ${termBefore} -> ${after.term}; writes ${writes.acked.length} (failed ${writes.failures.length})\n`,
    );
    expect(after.leader).toBe(true);
    expect(writes.failures).toEqual([]);
    expect(await missingOn(sandbox, 'r1', writes.acked.map((a) => a.id))).toEqual([]);
    expect(bus.outOfOrder).toEqual([]);
    expect(bus.rejected).toEqual([]);
    const status = await cli(['--config', configPath, 'status', '--json'], env);
    expect(status.err).toBe('');
    // The worker's queue after the takeover: a switchover back to p1.
    const switched = await cli(['--config', configPath, 'switchover', '--to', 'p1', '--wait', '--json'], env);
    expect(switched.err).toBe('');
    expect(JSON.parse(switched.out)).toMatchObject({ result: { outcome: 'switched', primaryId: 'p1' } });
    for (const r of routers) await routerSees(r, (x) => x.getWriteTarget().nodeId === 'p1', 15_000, 'writes on p1');
  });
});
