/**
 * The monitor's process: starts the node loops, the lease, the publisher and
 * the HTTP API, and runs one assessment round per interval (authority,
 * health, publication, remediation planning). Slightly over 300 lines: the
 * round is one sequence that reads best in one place; the decisions it calls
 * live in node-fleet, authority-tracker, remediation-planner and
 * @pgreplica/decisions.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { EPOCH_WRITE_QUERY, type RoundAssessment, TERM_WRITE_QUERY } from '@pgreplica/probe';
import { busKeys, type BusKeys, type BusEventPayload, type BusEventType, type Topology } from '@pgreplica/protocol';
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import { AuthorityStore, BusPublisher, ChangeLock, closeRedis, connectServiceRedis, LeaderLease } from '@pgreplica/bus';
import { closeServer, type Config, type HttpServer, listen, runShutdownSteps } from '@pgreplica/runtime';
import { AuthorityTracker, epochRowParams } from './authority-tracker.js';
import { createHttpApp } from './http.js';
import { MonitorMetrics } from './metrics.js';
import { NodeFleet } from './node-fleet.js';
import { RemediationPlanner } from './remediation-planner.js';
import { RemediationQueue } from './remediation-queue.js';

/** Lifecycle of a {@link Monitor}. */
export type MonitorStatus = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

/**
 * The monitor daemon: probes every node on its own loop, assesses the
 * cluster every `probeIntervalMs`, and — while it holds the lease — publishes
 * events and snapshots and enqueues remediation. Serves the HTTP API.
 */
export class Monitor {
  readonly config: Config;
  readonly metrics = new MonitorMetrics();
  readonly keys: BusKeys;
  readonly #logger: Logger;
  readonly #fleet: NodeFleet;
  readonly #planner: RemediationPlanner;
  #status: MonitorStatus = 'idle';
  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #abort = new AbortController();
  #redis: Redis | Cluster | undefined;
  #bullRedis: Redis | Cluster | undefined;
  #queue: RemediationQueue | undefined;
  #lease: LeaderLease | undefined;
  #publisher: BusPublisher | undefined;
  #authority: AuthorityTracker | undefined;
  #changeLock: ChangeLock | undefined;
  #server: HttpServer | undefined;
  #httpPort = 0;
  #roundLoop: Promise<void> | undefined;
  #topology: Topology | null = null;
  #lastRoundAt: Date | null = null;
  #lastSnapshotAt = 0;
  #needSnapshot = true;
  #warnedSlotKeepSize = false;
  /** The highest term this instance kept as the floor in the primary's database (written once per term, retried until it is). */
  #termFloorKept = 0;
  #termFloorWarned = 0;

  constructor(config: Config, logger: Logger) {
    this.config = config;
    this.#logger = logger;
    this.keys = busKeys(config.cluster);
    this.#planner = new RemediationPlanner(config);
    this.#fleet = new NodeFleet(config, logger, this.metrics, (id) => this.#authorityPrimaryId() === id);
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
    const { command, bullmq } = connectServiceRedis(this.config.redis, name, this.#logger);
    this.#redis = command;
    this.#bullRedis = bullmq;
    this.#redis.on('ready', () => {
      this.#needSnapshot = true;
      this.#logger.info('redis connection ready');
    });
    this.#queue = new RemediationQueue(this.#bullRedis, this.keys.queuePrefix, this.#logger, this.metrics, this.config.busKey);
    this.#lease = new LeaderLease(this.#redis, this.keys, this.config.instanceId, this.config.monitor.leader.leaseTtlMs, this.config.monitor.leader.ackReplicas, (term) => {
      this.metrics.authorityRejected.inc({ key: 'term', reason: 'implausible' });
      this.#logger.warn({ key: this.keys.term, forged: Number.isNaN(term) ? 'not an integer' : term }, 'a term on the bus was not written by a monitor (not an integer, or far above every term known): ignored, and replaced when this monitor takes the lease');
    });
    this.#publisher = new BusPublisher({
      redis: this.#redis,
      keys: this.keys,
      cluster: this.config.cluster,
      instanceId: this.config.instanceId,
      key: this.config.busKey,
      streamMaxLen: this.config.bus.streamMaxLen,
    });
    this.#changeLock = new ChangeLock(this.#redis, this.keys);
    this.#authority = new AuthorityTracker(new AuthorityStore(this.#redis, this.keys, this.config.busKey), this.#logger, (key, reason) => this.metrics.authorityRejected.inc({ key, reason }));

    const app = createHttpApp(
      {
        topology: () => this.#topology,
        health: () => this.#health(),
        registry: this.metrics.registry,
      },
      this.config.httpToken,
    );
    const { server, port } = await listen(app, this.config.monitor.http.host, this.config.monitor.http.port);
    this.#server = server;
    this.#httpPort = port;

    this.#fleet.start(this.#abort.signal);
    this.#roundLoop = this.#runRounds(this.#abort.signal);
    this.#status = 'running';
    this.#logger.info(
      { cluster: this.config.cluster, nodes: this.config.nodes.map((n) => n.id), http: `${this.config.monitor.http.host}:${port}`, signed: this.config.busKey !== undefined },
      'monitor started',
    );
  }

  #health() {
    const staleAfterMs = 3 * this.config.monitor.probeIntervalMs + this.config.database.connectTimeoutMs + this.config.database.statementTimeoutMs;
    const ok = this.#status === 'running' && this.#lastRoundAt !== null && Date.now() - this.#lastRoundAt.getTime() < staleAfterMs;
    return {
      ok,
      leader: this.isLeader,
      term: this.#lease?.term ?? 0,
      epoch: this.#authority?.record?.epoch ?? 0,
      lastRoundAt: this.#lastRoundAt?.toISOString() ?? null,
      instanceId: this.config.instanceId,
    };
  }

  #authorityPrimaryId(): string | null {
    return this.#authority?.record?.primaryId ?? this.#topology?.primaryId ?? null;
  }

  async #runRounds(signal: AbortSignal): Promise<void> {
    // Give the node loops one interval to produce their first results.
    while (!signal.aborted) {
      try {
        await sleep(this.config.monitor.probeIntervalMs, undefined, { signal });
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
        this.#lease!.observeTerm(await this.#authority!.refresh());
      } catch (err) {
        this.#logger.debug({ err }, 'cannot read the primary record');
      }
    }
    const probes = this.#fleet.results(now.getTime());
    // Terms never go backwards, even when Redis restarts empty or fails over to a
    // replica that was behind: the nodes keep a floor, read before taking a term.
    for (const p of probes) if (p.ok && p.sample.termFloor !== null) this.#lease!.observeTerm(p.sample.termFloor);
    // A monitor cut off from every PostgreSQL node (but not from Redis) must not lead while another one sees them.
    const reached = probes.filter((p) => p.ok).length;
    const othersReach = redisUp ? await this.#lease!.reportReach(reached, this.config.monitor.leader.leaseTtlMs) : false;
    const reachOk = reached > 0 || !othersReach;
    if (!reachOk && this.#lease!.isLeader) this.#logger.warn({ reached }, 'this monitor reaches no PostgreSQL node and another one does: giving the lease up');
    // Nor is a lease taken before every node answered (or failed) once: the floor may be on any of them.
    const mayLead = reachOk && (this.#lease!.isLeader || probes.length === this.config.nodes.length);
    const lease = redisUp ? await this.#lease!.tick(mayLead, this.#publisher!.lastSeq) : { leader: false, term: 0, changed: this.#lease!.isLeader };
    if (!redisUp && this.#lease!.isLeader) await this.#lease!.release();
    if (lease.changed) {
      this.#logger.info({ leader: lease.leader, term: lease.term }, lease.leader ? 'took the lease: publishing' : 'lost the lease: silent');
      if (lease.leader) this.#needSnapshot = true;
    }
    if (lease.leader) this.#publisher!.setTerm(lease.term);
    this.metrics.leader.set(lease.leader ? 1 : 0);
    this.metrics.term.set(lease.term);

    const { authority, epochChanged } = this.#authority!.resolve(probes, this.#topology);
    if (epochChanged) this.#needSnapshot = true;
    const changeLockHeld = redisUp ? await this.#changeLockHeld() : false;
    const round = this.#fleet.assessor.assess(probes, { ...authority, changeLockHeld }, now);
    if (lease.leader) await this.#settleAuthority(lease.term > this.#termFloorKept ? lease.term : null);
    this.#checkSlotKeepSize(round);

    const record = this.#authority!.record;
    const epoch = record?.epoch ?? 0;
    this.#topology = {
      cluster: this.config.cluster,
      epoch,
      primaryId: record?.primaryId ?? authority.primaryId,
      systemIdentifier: record?.systemIdentifier ?? authority.systemIdentifier,
      nodes: round.nodes,
      observedAt: now.toISOString(),
      heartbeatMs: this.config.monitor.heartbeatMs,
    };
    for (const change of round.changes) {
      const log = change.to === 'unhealthy' ? 'warn' : 'info';
      this.#logger[log]({ nodeId: change.nodeId, from: change.from, to: change.to, reason: change.reason, detail: change.detail }, 'node status changed');
    }

    if (lease.leader) {
      for (const change of round.changes) {
        await this.#publish('node.status', { nodeId: change.nodeId, from: change.from, to: change.to, reason: change.reason, detail: change.detail, node: change.node }, epoch);
      }
      if (this.#needSnapshot || round.changes.length > 0 || now.getTime() - this.#lastSnapshotAt >= this.config.monitor.heartbeatMs) {
        if (await this.#publish('snapshot', { topology: this.#topology }, epoch)) {
          this.#lastSnapshotAt = now.getTime();
          this.#needSnapshot = false;
        }
      }
      await this.#remediate(round, now);
    }

    this.metrics.observeNodes(round.nodes, round.reachable);
    if (round.primarySample) this.metrics.observeSlots(round.primarySample.slots);
    this.metrics.epoch.set(epoch);
    this.metrics.rounds.inc();
    this.#lastRoundAt = now;
    return round;
  }

  /**
   * Whether a worker job holds the cluster change lock: a switchover makes the
   * primary read-only on purpose while it holds it (see ClusterAssessor). A
   * failed read counts as not held: a primary read-only for `fall` rounds is
   * then reported rather than hidden.
   */
  async #changeLockHeld(): Promise<boolean> {
    try {
      return (await this.#changeLock!.holder()) !== null;
    } catch (err) {
      this.#logger.debug({ err }, 'cannot read the change lock');
      return false;
    }
  }

  /**
   * Leader only: records the first primary or repairs a bus behind the
   * databases, and keeps the term floor in the primary's database until it
   * is kept for this term (the primary may be away when the term starts:
   * the floor is what stops a monitor reusing a term a failed-over Redis
   * lost). Failures are logged and retried next round.
   */
  async #settleAuthority(newTerm: number | null): Promise<void> {
    const exec = (nodeId: string, sql: string, params: unknown[]) => this.#fleet.execute(nodeId, sql, params);
    try {
      if (await this.#authority!.settle(exec, EPOCH_WRITE_QUERY, epochRowParams)) this.#needSnapshot = true;
    } catch (err) {
      this.#logger.warn({ err }, 'cannot record the primary (database or bus)');
    }
    const primaryId = this.#authority!.record?.primaryId;
    if (newTerm !== null && primaryId) {
      try {
        await exec(primaryId, TERM_WRITE_QUERY, [newTerm]);
        this.#termFloorKept = newTerm;
      } catch (err) {
        // Once per term at warn level: it is retried every round.
        const level = this.#termFloorWarned === newTerm ? 'debug' : 'warn';
        this.#termFloorWarned = newTerm;
        this.#logger[level]({ err, term: newTerm }, 'cannot keep the term floor in the primary (retried every round)');
      }
    }
  }

  #checkSlotKeepSize(round: RoundAssessment): void {
    if (this.#warnedSlotKeepSize || !round.primarySample) return;
    this.#warnedSlotKeepSize = true;
    const primaryId = this.#authorityPrimaryId();
    const prober = primaryId === null ? undefined : this.#fleet.prober(primaryId);
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

  /** Runs what the planner decides for this round: enqueue jobs, announce a suppressed failover once per episode. */
  async #remediate(round: RoundAssessment, now: Date): Promise<void> {
    const authority = this.#authority!;
    const plan = this.#planner.plan(round, authority.record, authority.paused, (id) => this.#fleet.sampleOf(id), now.getTime());
    for (const job of plan.jobs) await this.#queue!.enqueue(job);
    const suppressed = plan.suppressed;
    if (!suppressed || !authority.record) return;
    this.metrics.failoversSuppressed.inc({ reason: suppressed.reason });
    if (!suppressed.announce) return;
    const { primaryId, epoch } = authority.record;
    this.#logger.warn({ primaryId, reason: suppressed.reason, inputs: suppressed.inputs }, 'failover suppressed');
    await this.#publish('failover.suppressed', { failedPrimaryId: primaryId, reason: suppressed.reason, detail: suppressed.detail, inputs: suppressed.inputs }, epoch);
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
      await runShutdownSteps(
        [
          ['round loop', async () => this.#roundLoop],
          ['lease', async () => this.#lease?.release()],
          ['http', () => closeServer(this.#server)],
          ['queue', async () => this.#queue?.close()],
          ['probes', () => this.#fleet.close()],
          ['redis', () => closeRedis(this.#redis, this.#bullRedis)],
        ],
        (err, step) => this.#logger.warn({ err, step }, 'shutdown step failed'),
      );
      this.#status = 'stopped';
      this.#logger.info('monitor stopped');
    })();
    return this.#closing;
  }
}
