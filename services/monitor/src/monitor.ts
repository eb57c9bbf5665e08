import { setTimeout as sleep } from 'node:timers/promises';
import type { ServerType } from '@hono/node-server';
import { ClusterAssessor, HeartbeatTracker, NodeProber, type NodeSpec, type RoundAssessment } from '@pgreplica/probe';
import {
  busKeys,
  type BusKeys,
  type BusEventPayload,
  type BusEventType,
  jobId,
  type JobName,
  type JobPayloadMap,
  type PrimaryRecord,
  REMEDIATION_QUEUE,
  type Topology,
} from '@pgreplica/protocol';
import { Queue } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import { AuthorityStore } from './authority-store.js';
import { BusPublisher } from './bus-publisher.js';
import { databaseSsl, type MonitorConfig } from './config.js';
import { createHttpApp, listen } from './http.js';
import { LeaderLease } from './leader-lease.js';
import { MonitorMetrics } from './metrics.js';
import { NodeLoop } from './node-loop.js';
import { connectServiceRedis } from './redis.js';
import { decideFailover, SlotWatch } from './triggers.js';

/** Lifecycle of a {@link Monitor}. */
export type MonitorStatus = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

/**
 * The monitor daemon: probes every node on its own loop, assesses the
 * cluster every `probeIntervalMs`, and — while it holds the lease — publishes
 * events and snapshots and enqueues remediation. Serves the HTTP API.
 */
export class Monitor {
  readonly config: MonitorConfig;
  readonly metrics = new MonitorMetrics();
  readonly keys: BusKeys;
  readonly #logger: Logger;
  readonly #heartbeat: HeartbeatTracker;
  readonly #heartbeatState: { tracker: HeartbeatTracker; instanceId: string; enabled: boolean; onDisabled(reason: string): void };
  readonly #assessor: ClusterAssessor;
  readonly #probers: NodeProber[];
  readonly #loops: NodeLoop[];
  readonly #slotWatch = new SlotWatch();
  #status: MonitorStatus = 'idle';
  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #abort = new AbortController();
  #redis: Redis | Cluster | undefined;
  #bullRedis: Redis | Cluster | undefined;
  #queue: Queue | undefined;
  #lease: LeaderLease | undefined;
  #publisher: BusPublisher | undefined;
  #authorityStore: AuthorityStore | undefined;
  #server: ServerType | undefined;
  #httpPort = 0;
  #roundLoop: Promise<void> | undefined;
  #authority: PrimaryRecord | null = null;
  #paused = false;
  #topology: Topology | null = null;
  #lastRoundAt: Date | null = null;
  #lastSnapshotAt = 0;
  #needSnapshot = true;
  #warnedSlotKeepSize = false;
  #suppressed = new Set<string>();
  #enqueued = new Set<string>();

  constructor(config: MonitorConfig, logger: Logger) {
    this.config = config;
    this.#logger = logger;
    this.keys = busKeys(config.cluster);
    this.#heartbeat = new HeartbeatTracker();
    this.#heartbeatState = {
      tracker: this.#heartbeat,
      instanceId: config.instanceId,
      enabled: config.writeHeartbeat,
      onDisabled: (reason) =>
        this.#logger.warn(
          { reason },
          'no write rights for the heartbeat table on the primary: time lag falls back to pg_stat_replication.replay_lag (grant as documented in the README)',
        ),
    };
    const specs: NodeSpec[] = config.nodes.map((n) => ({
      id: n.id,
      host: n.host,
      port: n.port,
      priority: n.priority,
      weight: n.weight,
      zone: n.zone,
      tags: n.tags,
      thresholds: n.lag,
    }));
    this.#assessor = new ClusterAssessor(specs, config.thresholds, this.#heartbeat);
    const ssl = databaseSsl(config);
    this.#probers = config.nodes.map(
      (n) =>
        new NodeProber(
          { id: n.id, host: n.host, port: n.port },
          {
            user: config.database.user,
            password: config.databasePassword,
            database: config.database.database,
            ssl,
            connectTimeoutMs: config.database.connectTimeoutMs,
            statementTimeoutMs: config.database.statementTimeoutMs,
            applicationName: `pgreplica-monitor`,
            heartbeatId: config.instanceId,
          },
        ),
    );
    this.#loops = this.#probers.map(
      (prober) =>
        new NodeLoop({
          prober,
          intervalMs: config.probeIntervalMs,
          logger: logger.child({ component: 'node-loop', nodeId: prober.target.id }),
          metrics: this.metrics,
          hooks: { isAuthorityPrimary: (id) => this.#authorityPrimaryId() === id },
          heartbeat: this.#heartbeatState,
        }),
    );
  }

  get status(): MonitorStatus {
    return this.#status;
  }

  /** Port the HTTP API listens on (useful with port 0). */
  get httpPort(): number {
    return this.#httpPort;
  }

  /** Whether this instance currently holds the lease. */
  get isLeader(): boolean {
    return this.#lease?.isLeader ?? false;
  }

  /** The latest snapshot. */
  get topology(): Topology | null {
    return this.#topology;
  }

  /** Starts everything. Idempotent; concurrent callers share one start. */
  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    this.#status = 'starting';
    const name = `pgreplica-monitor:${this.config.instanceId}`;
    const { command, bullmq } = connectServiceRedis(this.config, name, this.#logger);
    this.#redis = command;
    this.#bullRedis = bullmq;
    this.#redis.on('ready', () => {
      this.#needSnapshot = true;
      this.#logger.info('redis connection ready');
    });
    this.#queue = new Queue(REMEDIATION_QUEUE, {
      connection: this.#bullRedis,
      prefix: this.keys.queuePrefix,
      defaultJobOptions: { removeOnComplete: 1000, removeOnFail: 1000 },
    });
    this.#queue.on('error', (err) => this.#logger.debug({ err }, 'queue error'));
    this.#lease = new LeaderLease(this.#redis, this.keys, this.config.instanceId, this.config.leader.leaseTtlMs);
    this.#publisher = new BusPublisher({
      redis: this.#redis,
      keys: this.keys,
      cluster: this.config.cluster,
      instanceId: this.config.instanceId,
      key: this.config.busKey,
      streamMaxLen: this.config.bus.streamMaxLen,
    });
    this.#authorityStore = new AuthorityStore(this.#redis, this.keys);

    const app = createHttpApp(
      {
        topology: () => this.#topology,
        health: () => this.#health(),
        registry: this.metrics.registry,
      },
      this.config.httpToken,
    );
    const { server, port } = await listen(app, this.config.http.host, this.config.http.port);
    this.#server = server;
    this.#httpPort = port;

    for (const loop of this.#loops) loop.start(this.#abort.signal);
    this.#roundLoop = this.#runRounds(this.#abort.signal);
    this.#status = 'running';
    this.#logger.info(
      { cluster: this.config.cluster, nodes: this.config.nodes.map((n) => n.id), http: `${this.config.http.host}:${port}`, signed: this.config.busKey !== undefined },
      'monitor started',
    );
  }

  #health() {
    const staleAfterMs = 3 * this.config.probeIntervalMs + this.config.database.connectTimeoutMs + this.config.database.statementTimeoutMs;
    const ok = this.#status === 'running' && this.#lastRoundAt !== null && Date.now() - this.#lastRoundAt.getTime() < staleAfterMs;
    return {
      ok,
      leader: this.isLeader,
      term: this.#lease?.term ?? 0,
      epoch: this.#authority?.epoch ?? 0,
      lastRoundAt: this.#lastRoundAt?.toISOString() ?? null,
      instanceId: this.config.instanceId,
    };
  }

  #authorityPrimaryId(): string | null {
    return this.#authority?.primaryId ?? this.#topology?.primaryId ?? null;
  }

  async #runRounds(signal: AbortSignal): Promise<void> {
    // Give the node loops one interval to produce their first results.
    while (!signal.aborted) {
      try {
        await sleep(this.config.probeIntervalMs, undefined, { signal });
      } catch {
        return;
      }
      try {
        await this.round();
      } catch (err) {
        this.#logger.error({ err }, 'assessment round failed');
      }
    }
  }

  /** One assessment round. Public for tests; the loop calls it every interval. */
  async round(): Promise<RoundAssessment> {
    const now = new Date();
    const redisUp = this.#redis?.status === 'ready';

    if (redisUp) {
      try {
        const { record, raw, paused, term } = await this.#authorityStore!.read();
        this.#lease!.observeTerm(term);
        if (raw !== null && record === null) this.#logger.error({ key: this.keys.primary }, 'primary record on the bus is not valid; ignoring it');
        if (record && (this.#authority === null || record.epoch !== this.#authority.epoch)) {
          if (this.#authority) this.#logger.info({ from: this.#authority, to: record }, 'primary epoch changed');
          this.#needSnapshot = true;
        }
        if (record) this.#authority = record;
        this.#paused = paused;
      } catch (err) {
        this.#logger.debug({ err }, 'cannot read the primary record');
      }
    }
    const lease = redisUp ? await this.#lease!.tick() : { leader: false, term: 0, changed: this.#lease!.isLeader };
    if (!redisUp && this.#lease!.isLeader) await this.#lease!.release();
    if (lease.changed) {
      this.#logger.info({ leader: lease.leader, term: lease.term }, lease.leader ? 'took the lease: publishing' : 'lost the lease: silent');
      if (lease.leader) this.#needSnapshot = true;
    }
    if (lease.leader) this.#publisher!.setTerm(lease.term);
    this.metrics.leader.set(lease.leader ? 1 : 0);
    this.metrics.term.set(lease.term);

    const probes = this.#loops.map((l) => l.resultFor(now.getTime())).filter((r) => r !== null);
    const provisional = this.#authority ?? this.#provisionalAuthority(probes);
    const formerPrimaryIds = this.#authority?.previousPrimaryId ? [this.#authority.previousPrimaryId] : [];
    const round = this.#assessor.assess(probes, { ...provisional, formerPrimaryIds }, now);

    if (this.#authority === null && lease.leader && round.writable.length === 1) {
      await this.#bootstrapAuthority(round.writable[0]!);
    }
    this.#checkSlotKeepSize(round);

    const epoch = this.#authority?.epoch ?? 0;
    this.#topology = {
      cluster: this.config.cluster,
      epoch,
      primaryId: this.#authority?.primaryId ?? provisional.primaryId,
      systemIdentifier: this.#authority?.systemIdentifier ?? provisional.systemIdentifier,
      nodes: round.nodes,
      observedAt: now.toISOString(),
    };
    for (const change of round.changes) {
      const log = change.to === 'unhealthy' ? 'warn' : 'info';
      this.#logger[log]({ nodeId: change.nodeId, from: change.from, to: change.to, reason: change.reason, detail: change.detail }, 'node status changed');
    }

    if (lease.leader) {
      for (const change of round.changes) {
        await this.#publish('node.status', { nodeId: change.nodeId, from: change.from, to: change.to, reason: change.reason, detail: change.detail, node: change.node }, epoch);
      }
      if (this.#needSnapshot || round.changes.length > 0 || now.getTime() - this.#lastSnapshotAt >= this.config.heartbeatMs) {
        if (await this.#publish('snapshot', { topology: this.#topology }, epoch)) {
          this.#lastSnapshotAt = now.getTime();
          this.#needSnapshot = false;
        }
      }
      await this.#triggers(round, now);
    }

    this.metrics.observeNodes(round.nodes, round.reachable);
    if (round.primarySample) this.metrics.observeSlots(round.primarySample.slots);
    this.metrics.epoch.set(epoch);
    this.metrics.rounds.inc();
    this.#lastRoundAt = now;
    return round;
  }

  /** Before the bus names a primary: the one writable node, if exactly one. */
  #provisionalAuthority(probes: readonly { ok: boolean; nodeId: string; sample?: { inRecovery: boolean; systemIdentifier: string } }[]) {
    const writable = probes.filter((p) => p.ok && p.sample && !p.sample.inRecovery);
    const only = writable.length === 1 ? writable[0] : undefined;
    const previous = this.#topology;
    return {
      epoch: previous?.epoch ?? 0,
      primaryId: only?.nodeId ?? previous?.primaryId ?? null,
      systemIdentifier: only?.sample?.systemIdentifier ?? previous?.systemIdentifier ?? null,
    };
  }

  async #bootstrapAuthority(primaryId: string): Promise<void> {
    const sample = this.#assessor.sampleOf(primaryId);
    if (!sample) return;
    try {
      // After a Redis that lost its data: keep the epoch if the primary is the
      // same, else go past it; never backwards either way.
      const previous = this.#topology;
      const floor = previous && previous.epoch > 0 ? (previous.primaryId === primaryId ? previous.epoch : previous.epoch + 1) : 1;
      const record = await this.#authorityStore!.bootstrap(primaryId, sample.systemIdentifier, floor);
      if (record) {
        this.#authority = record;
        this.#needSnapshot = true;
        this.#logger.info({ primaryId, epoch: record.epoch, systemIdentifier: record.systemIdentifier }, 'recorded the primary on the bus (bootstrap)');
      }
    } catch (err) {
      this.#logger.warn({ err }, 'cannot record the primary on the bus');
    }
  }

  #checkSlotKeepSize(round: RoundAssessment): void {
    if (this.#warnedSlotKeepSize || !round.primarySample) return;
    this.#warnedSlotKeepSize = true;
    const prober = this.#probers.find((p) => p.target.id === this.#authorityPrimaryId());
    prober
      ?.query<{ max_slot_wal_keep_size: string }>('SHOW max_slot_wal_keep_size')
      .then(({ rows }) => {
        if (rows[0]?.max_slot_wal_keep_size === '-1') {
          this.#logger.warn(
            { nodeId: prober.target.id },
            'max_slot_wal_keep_size is unlimited on the primary: an abandoned replication slot can fill the disk (set it, see deploy/postgres/replication.conf)',
          );
        }
      })
      .catch((err: unknown) => {
        this.#warnedSlotKeepSize = false;
        this.#logger.debug({ err }, 'cannot read max_slot_wal_keep_size');
      });
  }

  async #publish<T extends BusEventType>(type: T, payload: BusEventPayload<T>, epoch: number): Promise<boolean> {
    try {
      const { outcome } = await this.#publisher!.publish(type, payload, epoch);
      if (outcome === 'published') {
        this.metrics.eventsPublished.inc({ type });
        return true;
      }
      this.metrics.publishFailures.inc({ cause: 'not-leader' });
      return false;
    } catch (err) {
      this.metrics.publishFailures.inc({ cause: 'redis' });
      this.#logger.warn({ err, type }, 'cannot publish on the bus');
      return false;
    }
  }

  async #enqueue<N extends JobName>(name: N, payload: JobPayloadMap[N], id: string): Promise<void> {
    if (this.#enqueued.has(id)) return;
    this.#enqueued.add(id);
    try {
      // Every job re-checks its preconditions when it runs and is idempotent: safe to retry with back-off.
      await this.#queue!.add(name, payload, { jobId: id, attempts: 5, backoff: { type: 'exponential', delay: 1_000 } });
      this.metrics.jobsEnqueued.inc({ job: name });
      this.#logger.info({ job: name, jobId: id }, 'remediation job enqueued');
    } catch (err) {
      this.#enqueued.delete(id);
      this.#logger.warn({ err, job: name }, 'cannot enqueue remediation job');
    }
  }

  async #triggers(round: RoundAssessment, now: Date): Promise<void> {
    const epoch = this.#authority?.epoch ?? 0;
    const primaryId = this.#authorityPrimaryId();
    if (round.primarySample) {
      for (const slot of this.#slotWatch.evaluate(round.primarySample.slots, this.config.slots, now.getTime())) {
        await this.#enqueue(
          'slot-cleanup',
          {
            cluster: this.config.cluster,
            epoch,
            slotName: slot.slotName,
            maxRetainedBytes: this.config.slots.maxRetainedBytes,
            inactiveGraceMs: this.config.slots.inactiveGraceMs,
            dryRun: false,
            reason: `inactive for ${this.#slotWatch.inactiveForMs(slot.slotName, now.getTime())} ms, retaining ${slot.retainedBytes} bytes`,
          },
          jobId('slot-cleanup', { cluster: this.config.cluster, epoch, slotName: slot.slotName }),
        );
      }
    }
    if (!this.#authority || primaryId === null) return;
    // A writable node that is not the primary of the epoch (a returning old
    // primary, a replica promoted by hand): have the worker fence it.
    for (const node of round.nodes) {
      if (node.reason !== 'second-primary' && node.reason !== 'stale-primary') continue;
      await this.#enqueue(
        'fence',
        { cluster: this.config.cluster, epoch, nodeId: node.id, reason: `writable, but the primary of epoch ${epoch} is ${primaryId}` },
        jobId('fence', { cluster: this.config.cluster, epoch, nodeId: node.id }),
      );
    }
    const primary = round.nodes.find((n) => n.id === primaryId);
    const decision = decideFailover({
      primary,
      witnesses: round.nodes
        .filter((n) => n.id !== primaryId)
        .map((n) => ({ nodeId: n.id, reachable: round.reachable.has(n.id), sample: this.#assessor.sampleOf(n.id) })),
      otherNodeAddresses: new Set(this.config.nodes.filter((n) => n.id !== primaryId).map((n) => `${n.host}:${n.port}`)),
      policy: this.config.failover,
      paused: this.#paused,
      nowMs: now.getTime(),
    });
    if (decision.action === 'none') {
      if (primary?.status !== 'unhealthy') this.#suppressed.clear();
      return;
    }
    if (decision.action === 'suppress') {
      const episode = `${epoch}:${decision.reason}`;
      this.metrics.failoversSuppressed.inc({ reason: decision.reason });
      if (this.#suppressed.has(episode)) return;
      this.#suppressed.add(episode);
      this.#logger.warn({ primaryId, reason: decision.reason, inputs: decision.inputs }, 'failover suppressed');
      await this.#publish('failover.suppressed', { failedPrimaryId: primaryId, reason: decision.reason, detail: decision.detail, inputs: decision.inputs }, epoch);
      return;
    }
    await this.#enqueue(
      'promote',
      {
        cluster: this.config.cluster,
        epoch,
        failedPrimaryId: primaryId,
        maxLagOnFailoverBytes: this.config.failover.maxLagOnFailoverBytes,
        automatic: true,
        dryRun: false,
        detectedAt: primary?.since ?? now.toISOString(),
      },
      jobId('promote', { cluster: this.config.cluster, epoch }),
    );
  }

  /**
   * Stops in order: intake (loops), the lease (released so a standby takes
   * over at once), HTTP, then connections. Idempotent; waits for a start in
   * progress. A step that fails is logged and the rest still run.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#starting?.catch(() => {});
      this.#status = 'stopping';
      this.#abort.abort();
      const steps: [string, () => Promise<unknown>][] = [
        ['round loop', async () => this.#roundLoop],
        ['node loops', () => Promise.all(this.#loops.map((l) => l.stopped()))],
        ['lease', async () => this.#lease?.release()],
        ['http', () => new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()))],
        ['queue', async () => this.#queue?.close()],
        ['probers', () => Promise.all(this.#probers.map((p) => p.close()))],
        ['redis', async () => Promise.all([this.#redis?.quit().catch(() => this.#redis?.disconnect()), this.#bullRedis?.quit().catch(() => this.#bullRedis?.disconnect())])],
      ];
      for (const [step, run] of steps) {
        try {
          await run();
        } catch (err) {
          this.#logger.warn({ err, step }, 'shutdown step failed');
        }
      }
      this.#status = 'stopped';
      this.#logger.info('monitor stopped');
    })();
    return this.#closing;
  }
}
