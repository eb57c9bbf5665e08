import type { Monitor } from '@pgreplica/monitor';
import { busKeys, createEvent, encodeEvent, REMEDIATION_QUEUE, signJob, signRecord, type Topology } from '@pgreplica/protocol';
import { createLogger, resolveConfig } from '@pgreplica/runtime';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { RemediationWorker } from '@pgreplica/worker';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';
import { BusRecorder, startMonitor } from './monitor-fixture.js';
import { clusterConfig, startWorker, workerEnv } from './worker-fixture.js';

const KEY = 'security-test-bus-key-0123456789';
const OTHER_KEY = 'another-bus-key-somebody-else-has';

/** The value of one series of a counter in a registry's text output (0 when absent). */
async function counter(registry: { getSingleMetricAsString(name: string): Promise<string> }, name: string, labels: Record<string, string>): Promise<number> {
  const text = await registry.getSingleMetricAsString(name).catch(() => '');
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && want.every((w) => l.includes(w)));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

// Someone who can write to Redis but does not hold the bus key, attacking with
// a plain Redis client: nothing moves, and a counter and a log line say why.
describe('security: Redis access without the bus key', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let worker: RemediationWorker;
  let bus: BusRecorder;
  let redis: Redis;
  let queue: Queue;
  let queueConnection: Redis;
  const keys = busKeys('main');

  /** The cluster as it should stay: p1 writable and primary of epoch 1, r1 and r2 streaming replicas. */
  async function nothingMoved(): Promise<void> {
    expect(await sandbox.node('p1').isInRecovery()).toBe(false);
    expect(await sandbox.node('r1').isInRecovery()).toBe(true);
    expect(await sandbox.node('r2').isInRecovery()).toBe(true);
    const [open] = await sandbox.primary.query<{ allowed: boolean }>("SELECT datallowconn AS allowed FROM pg_database WHERE datname = 'postgres'");
    expect(open?.allowed).toBe(true);
    expect(monitor.topology).toMatchObject({ epoch: 1, primaryId: 'p1' });
    expect(bus.events.filter((e) => e.type === 'primary.changed' || e.type === 'failover.started' || e.type === 'switchover.started')).toEqual([]);
  }

  /** Adds a job as an attacker would and waits until the worker has dealt with it; returns why it failed. */
  async function attackWith(name: string, data: Record<string, unknown>, jobId: string): Promise<string> {
    const job = await queue.add(name, data, { jobId, attempts: 1 });
    let reason = '';
    await eventually(async () => {
      const state = await job.getState();
      if (state === 'failed') reason = (await queue.getJob(jobId))?.failedReason ?? '';
      return state === 'failed' || state === 'completed';
    }, 15_000, `job ${jobId} handled`);
    return reason;
  }

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    const config = clusterConfig(sandbox, { slots: { maxRetainedBytes: 1024, inactiveGraceMs: 3_600_000 } });
    monitor = await startMonitor(sandbox, { failover: config.failover, slots: config.slots, worker: config.worker }, KEY);
    worker = await startWorker(sandbox, { slots: config.slots }, KEY);
    bus = await BusRecorder.start(sandbox.redis!.url, 'main', KEY);
    redis = new Redis(sandbox.redis!.url);
    queueConnection = new Redis(sandbox.redis!.url, { maxRetriesPerRequest: null });
    queue = new Queue(REMEDIATION_QUEUE, { connection: queueConnection, prefix: keys.queuePrefix });
    await eventually(() => monitor.topology?.nodes.every((n) => n.status === 'healthy') === true, 20_000, 'all healthy');
    await eventually(async () => (await redis.get(keys.primary)) !== null, 10_000, 'primary record');
  });
  afterAll(async () => {
    await queue?.close();
    queueConnection?.disconnect();
    await worker?.close();
    await monitor?.close();
    await bus?.close();
    await redis?.quit();
    await sandbox?.stop();
  });

  it('signs the primary record; a forged one naming a replica is ignored, counted and replaced', async () => {
    const genuine = JSON.parse((await redis.get(keys.primary))!) as Record<string, unknown>;
    expect(genuine).toMatchObject({ epoch: 1, primaryId: 'p1' });
    expect(genuine.sig).toMatch(/^[0-9a-f]{64}$/);

    // Unsigned, then signed with a key that is not the cluster's: both at a higher epoch.
    const forgeries = [
      { reason: 'unsigned', value: { ...genuine, epoch: 7, primaryId: 'r1', previousPrimaryId: 'p1', cause: 'manual', sig: undefined } },
      { reason: 'bad-signature', value: signRecord({ ...genuine, epoch: 8, primaryId: 'r2', previousPrimaryId: 'p1', cause: 'manual' }, OTHER_KEY) },
    ];
    for (const { reason, value } of forgeries) {
      const before = await counter(monitor.metrics.registry, 'pgreplica_authority_rejected_total', { key: 'primary', reason });
      await redis.set(keys.primary, JSON.stringify(value));
      await eventually(async () => (await counter(monitor.metrics.registry, 'pgreplica_authority_rejected_total', { key: 'primary', reason })) > before, 10_000, `${reason} counted`);
      // The leader rewrites the record from the databases' epoch rows, signed.
      await eventually(async () => JSON.parse((await redis.get(keys.primary))!).primaryId === 'p1', 10_000, 'record restored');
    }
    const restored = JSON.parse((await redis.get(keys.primary))!) as Record<string, unknown>;
    expect(restored).toMatchObject({ epoch: 1, primaryId: 'p1' });
    expect(restored.sig).toMatch(/^[0-9a-f]{64}$/);
    // The snapshots the monitor signed through all this kept p1 as the primary.
    expect(bus.events.filter((e) => e.type === 'snapshot').every((e) => e.type === 'snapshot' && e.topology.primaryId === 'p1')).toBe(true);
    await nothingMoved();
  });

  it('refuses jobs that are unsigned, altered, signed with another key, expired, copied, or named after a prototype key', async () => {
    const refused = (reason: string, job = 'promote') => counter(worker.registry, 'pgreplica_worker_jobs_refused_total', { job, reason });
    const now = new Date().toISOString();
    const promote = { cluster: 'main', epoch: 1, failedPrimaryId: 'p1', candidateId: 'r2', automatic: false, dryRun: false, detectedAt: now };

    expect(await attackWith('promote', promote, 'forged-promote')).toMatch(/not signed with the bus key \(unsigned\)/);
    expect(await refused('unsigned')).toBe(1);
    expect(await attackWith('promote', signJob('promote', promote, OTHER_KEY), 'other-key-promote')).toMatch(/bad-signature/);
    // A genuine signature on a payload the attacker then changed.
    const genuine = signJob('promote', { ...promote, dryRun: true }, KEY);
    expect(await attackWith('promote', { ...genuine, dryRun: false }, 'altered-promote')).toMatch(/bad-signature/);
    expect(await refused('bad-signature')).toBe(2);
    expect(await attackWith('promote', signJob('promote', promote, KEY, Date.now() - 3_600_000), 'expired-promote')).toMatch(/expired/);
    expect(await refused('expired')).toBe(1);
    expect(await attackWith('switchover', { cluster: 'main', epoch: 1, candidateId: 'r1', maxWritePauseMs: 100 }, 'forged-switchover')).toMatch(/unsigned/);
    expect(await attackWith('fence', { cluster: 'main', epoch: 1, nodeId: 'p1', reason: 'forged' }, 'forged-fence')).toMatch(/unsigned/);
    expect(await attackWith('slot-cleanup', { cluster: 'main', epoch: 1, dryRun: false, reason: 'forged', inactiveSince: '2000-01-01T00:00:00.000Z' }, 'forged-cleanup')).toMatch(/unsigned/);
    expect(await attackWith('constructor', { cluster: 'main' }, 'proto-job')).toMatch(/unknown job "constructor"/);
    expect(await attackWith('__proto__', { cluster: 'main' }, 'proto-job-2')).toMatch(/unknown job/);
    expect(await counter(worker.registry, 'pgreplica_worker_jobs_refused_total', { job: 'unknown', reason: 'unknown-job' })).toBe(2);

    // A genuine job (as the CLI signs it) runs once; a copy of it under another id does not.
    const dryRun = signJob('promote', { ...promote, dryRun: true }, KEY);
    expect(await attackWith('promote', dryRun, 'genuine-dry-run')).toBe('');
    expect(await attackWith('promote', dryRun, 'copied-dry-run')).toMatch(/already used/);
    expect(await refused('replayed')).toBe(1);
    await nothingMoved();
    const slots = await sandbox.primary.query<{ slot_name: string }>('SELECT slot_name FROM pg_replication_slots ORDER BY 1');
    expect(slots.map((s) => s.slot_name)).toEqual(['r1', 'r2']);
  });

  it('ignores forged remediation state: a slot first-seen time from long ago does not skip the grace period', async () => {
    await sandbox.primary.query("SELECT pg_create_physical_replication_slot('abandoned', true)");
    await sandbox.primary.query('CREATE TABLE IF NOT EXISTS wal_filler AS SELECT g FROM generate_series(1, 20000) g');
    // Written by someone without the key: "inactive for two hours" (the grace period is one hour).
    await redis.hset(keys.slotsInactiveSince, 'abandoned', String(Date.now() - 2 * 3_600_000));
    const job = signJob('slot-cleanup', { cluster: 'main', epoch: 1, slotName: 'abandoned', dryRun: false, reason: 'test' }, KEY);
    expect(await attackWith('slot-cleanup', job, 'cleanup-after-forged-state')).toBe('');
    const result = (await queue.getJob('cleanup-after-forged-state'))?.returnvalue as { result: { dropped: string[]; kept: { slotName: string; why: string }[] } };
    expect(result.result.dropped).toEqual([]);
    expect(result.result.kept.find((k) => k.slotName === 'abandoned')?.why).toMatch(/grace period/);
    expect(await counter(worker.registry, 'pgreplica_worker_state_rejected_total', { reason: 'malformed' }) + (await counter(worker.registry, 'pgreplica_worker_state_rejected_total', { reason: 'unsigned' }))).toBeGreaterThan(0);
    expect((await sandbox.primary.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name = 'abandoned'"))[0]!.n).toBe(1);
    await sandbox.primary.query("SELECT pg_drop_replication_slot('abandoned')");
  });

  it('a router drops a signed snapshot replayed from long ago, on the channel and in the topology key', async () => {
    const { createRouter } = await import('@pgreplica/router-client');
    const replayKeys = busKeys('replayed');
    const old: Topology = { ...(monitor.topology as Topology), cluster: 'replayed', primaryId: 'r1', observedAt: new Date(Date.now() - 600_000).toISOString() };
    const snapshot = encodeEvent(createEvent('snapshot', { topology: old } as never, { cluster: 'replayed', term: 1, seq: 1, epoch: 1, at: new Date(Date.now() - 600_000), key: KEY }));
    await redis.set(replayKeys.topology, snapshot);
    const router = createRouter({ cluster: 'replayed', redis: sandbox.redis!.url, busKey: KEY, connection: { user: 'postgres', password: sandbox.primary.connectionConfig.password as string, database: 'postgres' }, readyTimeoutMs: 3_000 });
    try {
      await redis.publish(replayKeys.events, snapshot);
      await expect(router.ready()).rejects.toThrow();
      const expired = await counter(router.metrics.registry, 'pgreplica_router_bus_events_total', { outcome: 'expired' });
      expect(expired).toBeGreaterThanOrEqual(1);
      expect(router.getTopology().topology).toBeNull();
    } finally {
      await router.close();
    }
  });

  it('a forged term (not a number, or far above every term) is replaced: the monitor keeps leading under a term a client can count, and says so', async () => {
    const gauge = async (name: string) => Number((await monitor.metrics.registry.getSingleMetricAsString(name)).split('\n').find((l) => l.startsWith(`${name} `))?.split(' ')[1] ?? Number.NaN);
    const termBefore = await gauge('pgreplica_monitor_term');
    // Not a number; a safe integer far above every term (the monitor must not adopt it, nor write it to the databases' floor); past 2^53.
    for (const [i, forged] of ['not-a-term', '1000000000000000', '9007199254740993'].entries()) {
      await redis.set(keys.term, forged);
      await eventually(async () => (await counter(monitor.metrics.registry, 'pgreplica_authority_rejected_total', { key: 'term', reason: 'implausible' })) >= i + 1, 10_000, `forged term ${forged} replaced`);
      // The lease taken again under a sane term, and Redis holding it instead of the forgery.
      await eventually(
        async () => (await gauge('pgreplica_monitor_leader')) === 1 && (await redis.get(keys.term)) === String(await gauge('pgreplica_monitor_term')),
        10_000,
        'leading again, the forged term replaced',
      );
      const term = await gauge('pgreplica_monitor_term');
      expect(term).toBeGreaterThan(termBefore);
      expect(term).toBeLessThan(termBefore + 10);
      // Its events reach the bus under that term (a router would take them).
      await bus.waitFor((e) => e.type === 'snapshot' && e.term === term, 10_000, `a snapshot of term ${term}`);
    }
    // Nothing forged reached the term floor the databases keep.
    const [floor] = await sandbox.primary.query<{ term: number }>('SELECT term::float8 AS term FROM pgreplica.term WHERE id = 1');
    expect(floor!.term).toBeLessThan(termBefore + 10);
    await nothingMoved();
  });

  it("the worker's HTTP API honours PGREPLICA_HTTP_TOKEN: /metrics refused without it, /health says only its verdict", async () => {
    const token = 'worker-http-token-0123456789';
    const config = resolveConfig(clusterConfig(sandbox), { ...workerEnv(sandbox, KEY), PGREPLICA_HTTP_TOKEN: token });
    const second = new RemediationWorker(config, createLogger('silent', undefined, 'pgreplica-worker'));
    await second.start();
    try {
      const base = `http://127.0.0.1:${second.httpPort}`;
      const bearer = { authorization: `Bearer ${token}` };
      expect((await fetch(`${base}/metrics`)).status).toBe(401);
      expect((await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer wrong-token-of-the-same-len' } })).status).toBe(401);
      const metrics = await fetch(`${base}/metrics`, { headers: bearer });
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toContain('pgreplica_worker_jobs_refused_total');
      const open = await fetch(`${base}/health`);
      expect(Object.keys((await open.json()) as object)).toEqual(['ok']);
      const full = (await (await fetch(`${base}/health`, { headers: bearer })).json()) as { ok: boolean; status: string };
      expect(full).toMatchObject({ ok: true, status: 'running' });
    } finally {
      await second.close();
    }
  });

  it('a forged pause flag and a forged "failover just happened" do not stop the failover of a dead primary', async () => {
    await redis.set(keys.paused, JSON.stringify({ at: new Date().toISOString(), by: 'attacker' }));
    await redis.set(keys.lastFailover, String(Date.now()));
    await eventually(async () => (await counter(monitor.metrics.registry, 'pgreplica_authority_rejected_total', { key: 'paused', reason: 'unsigned' })) > 0, 10_000, 'forged pause counted');
    await sandbox.primary.kill();
    const changed = await bus.waitFor((e) => e.type === 'primary.changed', 30_000, 'primary.changed');
    expect(changed.epoch).toBe(2);
    const writable = await Promise.all(['r1', 'r2'].map(async (id) => !(await sandbox.node(id).isInRecovery())));
    expect(writable.filter(Boolean)).toHaveLength(1);
    expect(bus.events.filter((e) => e.type === 'failover.suppressed')).toEqual([]);
  });
});
