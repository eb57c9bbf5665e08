import type { Monitor } from '@pgreplica/monitor';
import { busKeys, REMEDIATION_QUEUE } from '@pgreplica/protocol';
import { freePort, type Sandbox, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, writeConfig } from './cli-fixture.js';
import { eventually } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';
import { clusterConfig, startWorker, workerEnv } from './worker-fixture.js';

// The CLI against a real cluster, monitor and worker; the failover policy is
// manual here so every remediation is the test's doing.
describe('pgreplica CLI and worker jobs', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let worker: RemediationWorker;
  let bus: BusRecorder;
  let redis: Redis;
  let config: Record<string, unknown>;
  let configPath: string;
  let env: NodeJS.ProcessEnv;
  const keys = busKeys('main');
  const pg = (args: string[], interrupted?: Promise<void>) => cli(['--config', configPath, ...args], env, interrupted);

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    config = clusterConfig(sandbox, {
      failover: { policy: 'manual', failoverAfterMs: 1_000, witnessFreshMs: 3_000 },
      slots: { maxRetainedBytes: 1024 * 1024, inactiveGraceMs: 3_600_000 },
    });
    monitor = await startMonitor(sandbox, { failover: config.failover, slots: config.slots, worker: config.worker });
    worker = await startWorker(sandbox, { failover: config.failover, slots: config.slots });
    bus = await BusRecorder.start(sandbox.redis!.url);
    redis = new Redis(sandbox.redis!.url);
    env = workerEnv(sandbox);
    configPath = writeConfig(sandbox.baseDir, 'cli.json', config);
    await eventually(async () => (await pg(['status', '--json'])).code === 0, 15_000, 'a topology');
    await eventually(() => monitor.topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
  });
  afterAll(async () => {
    await worker?.close();
    await monitor?.close();
    await bus?.close();
    await redis?.quit();
    await sandbox?.stop();
  });

  it('refuses bad arguments, unknown nodes, a silent Redis and a cluster without a monitor, with distinct exit codes', async () => {
    expect((await pg(['frobnicate'])).code).toBe(2);
    expect((await pg(['events'])).code).toBe(2);
    expect((await pg(['events', '--since', 'yesterday-ish'])).code).toBe(2);
    const unknown = await pg(['switchover', '--to', 'nope']);
    expect(unknown.code).toBe(5);
    expect(unknown.err).toContain('unknown node "nope"; nodes of cluster main: p1, r1, r2');
    const deadRedis = writeConfig(sandbox.baseDir, 'dead.json', { ...config, redis: { url: `redis://127.0.0.1:${await freePort()}` } });
    const silent = await cli(['--config', deadRedis, 'status'], env);
    expect(silent.code).toBe(3);
    expect(silent.err).toContain('does not answer');
    const other = writeConfig(sandbox.baseDir, 'other.json', { ...config, cluster: 'other' });
    const noLeader = await cli(['--config', other, 'status'], env);
    expect(noLeader.code).toBe(4);
    expect(noLeader.err).toContain('no monitor holds the lease for cluster "other"');
    const badConfig = await cli(['--config', '/nonexistent.yaml', 'status'], env);
    expect(badConfig.code).toBe(2);
  });

  it('status, events and watch show the cluster', async () => {
    const text = await pg(['status']);
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/cluster main, epoch 1, primary p1/);
    expect(text.out).toMatch(/p1\*\s+primary\s+healthy/);
    const json = JSON.parse((await pg(['status', '--json'])).out) as { topology: { nodes: { id: string }[] } };
    expect(json.topology.nodes.map((n) => n.id)).toEqual(['p1', 'r1', 'r2']);
    const events = await pg(['events', '--since', '5m']);
    expect(events.code).toBe(0);
    expect(events.out).toContain('snapshot');
    const watched = await pg(['watch'], new Promise((resolve) => setTimeout(resolve, 2_500)));
    expect(watched.code).toBe(0);
    expect(watched.out).toMatch(/snapshot\s+t\d+\/s\d+ e1 primary p1/);
  });

  it('slots lists them; --cleanup honours the grace period, --dry-run drops nothing, --cleanup drops only the inactive slot over the limit', async () => {
    await sandbox.primary.query("SELECT pg_create_physical_replication_slot('abandoned', true)");
    await sandbox.primary.query('CREATE TABLE filler AS SELECT g, md5(g::text) AS pad FROM generate_series(1, 40000) g');
    await sandbox.primary.query('SELECT pg_switch_wal()');
    // A slot reserves WAL from the last checkpoint's redo point: checkpoint first so 'fresh' retains little.
    await sandbox.primary.query('CHECKPOINT');
    await sandbox.primary.query("SELECT pg_create_physical_replication_slot('fresh', true)");
    const listed = JSON.parse((await pg(['slots', '--json'])).out) as { slot_name: string; active: boolean }[];
    expect(listed.map((s) => s.slot_name)).toEqual(['abandoned', 'fresh', 'r1', 'r2']);

    // Nothing says how long 'abandoned' has been inactive: inside its grace period (1 h here), it stays.
    const early = JSON.parse((await pg(['slots', '--cleanup', '--json'])).out) as { result: { dropped: string[]; kept: { slotName: string; why: string }[] } };
    expect(early.result.dropped).toEqual([]);
    expect(early.result.kept.find((k) => k.slotName === 'abandoned')?.why).toMatch(/inside its grace period of 3600000 ms/);
    // The worker's own first sighting, kept in Redis: two hours ago.
    await redis.hset(keys.slotsInactiveSince, 'abandoned', String(Date.now() - 2 * 3_600_000));
    const dry = await pg(['slots', '--cleanup', '--dry-run', '--json']);
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.out)).toMatchObject({ result: { dryRun: true, dropped: ['abandoned'] } });
    expect((await sandbox.primary.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name = 'abandoned'"))[0]!.n).toBe(1);

    const real = await pg(['slots', '--cleanup', '--json']);
    expect(real.code).toBe(0);
    const result = JSON.parse(real.out) as { result: { dropped: string[]; kept: { slotName: string; why: string }[]; retainedBytesBefore: number; retainedBytesAfter: number } };
    expect(result.result.dropped).toEqual(['abandoned']);
    expect(result.result.kept.map((k) => k.slotName).sort()).toEqual(['fresh', 'r1', 'r2']);
    expect(result.result.retainedBytesAfter).toBeLessThan(result.result.retainedBytesBefore);
    const remaining = await sandbox.primary.query<{ slot_name: string }>('SELECT slot_name FROM pg_replication_slots ORDER BY 1');
    expect(remaining.map((r) => r.slot_name)).toEqual(['fresh', 'r1', 'r2']);
    await bus.waitFor((e) => e.type === 'slot.dropped' && e.slotName === 'abandoned' && !e.dryRun, 5_000, 'slot.dropped');
    await sandbox.primary.query("SELECT pg_drop_replication_slot('fresh')");
  });

  it('pause and resume switch automatic remediation off and on', async () => {
    expect((await pg(['pause'])).code).toBe(0);
    expect(await redis.exists(keys.paused)).toBe(1);
    expect((await pg(['status'])).out).toContain('AUTOMATIC REMEDIATION PAUSED');
    // An automatic promote arriving now is suppressed, nothing changes.
    const connection = redis.duplicate({ maxRetriesPerRequest: null });
    const queue = new Queue(REMEDIATION_QUEUE, { connection, prefix: keys.queuePrefix });
    try {
      const since = bus.events.length;
      await queue.add('promote', { cluster: 'main', epoch: 1, failedPrimaryId: 'p1', automatic: true, dryRun: false, detectedAt: new Date().toISOString() }, { jobId: 'paused-test' });
      const event = await bus.waitFor((e) => e.type === 'failover.suppressed' && e.reason === 'paused', 10_000, 'suppressed: paused', since);
      expect(event.epoch).toBe(1);
    } finally {
      // BullMQ does not close a connection it was given.
      await queue.close();
      connection.disconnect();
    }
    expect((await pg(['resume'])).code).toBe(0);
    expect(await redis.exists(keys.paused)).toBe(0);
  });

  it('promote aborts, changing nothing, while the worker reaches the primary', async () => {
    const result = await pg(['promote', '--to', 'r1', '--wait']);
    expect(result.code).toBe(1);
    expect(result.err).toContain('primary-reachable');
    expect(await sandbox.node('r1').isInRecovery()).toBe(true);
    expect(JSON.parse((await redis.get(keys.primary))!)).toMatchObject({ epoch: 1, primaryId: 'p1' });
  });

  it('two promote jobs for the same epoch promote once; a later automatic one inside the flap window is suppressed', async () => {
    await sandbox.primary.kill();
    await eventually(() => monitor.topology?.nodes.find((n) => n.id === 'p1')?.status === 'unhealthy', 15_000, 'p1 unhealthy');
    await bus.waitFor((e) => e.type === 'failover.suppressed' && e.reason === 'policy-manual', 15_000, 'manual policy suppression');
    const [a, b] = await Promise.all([pg(['promote', '--wait', '--json']), pg(['promote', '--wait', '--json'])]);
    const outcomes = [a, b].map((r) => (JSON.parse(r.out) as { result: { outcome: string } }).result.outcome).sort();
    expect(outcomes).toEqual(['already-done', 'promoted']);
    const record = JSON.parse((await redis.get(keys.primary))!) as { epoch: number; primaryId: string };
    expect(record.epoch).toBe(2);
    const writable = await Promise.all(['r1', 'r2'].map(async (id) => !(await sandbox.node(id).isInRecovery())));
    expect(writable.filter(Boolean)).toHaveLength(1);
    expect(bus.events.filter((e) => e.type === 'primary.changed')).toHaveLength(1);

    // An automatic failover just happened (recorded): a second failure inside the window is not failed over.
    await redis.set(keys.lastFailover, String(Date.now()));
    const connection = redis.duplicate({ maxRetriesPerRequest: null });
    const queue = new Queue(REMEDIATION_QUEUE, { connection, prefix: keys.queuePrefix });
    try {
      const since = bus.events.length;
      await queue.add('promote', { cluster: 'main', epoch: 2, failedPrimaryId: record.primaryId, automatic: true, dryRun: false, detectedAt: new Date().toISOString() }, { jobId: 'flap-test' });
      const event = await bus.waitFor((e) => e.type === 'failover.suppressed' && e.reason === 'flap-window', 10_000, 'suppressed: flap window', since);
      expect(event.type === 'failover.suppressed' && event.detail).toContain('at most one per');
    } finally {
      // BullMQ does not close a connection it was given.
      await queue.close();
      connection.disconnect();
    }
    expect(JSON.parse((await redis.get(keys.primary))!)).toMatchObject({ epoch: 2 });
  });
});
