import { AuthorityStore, BusPublisher, ChangeLock, closeRedis, connectServiceRedis, RemediationLedger } from '@pgreplica/bus';
import { type BusKeys, busKeys, checkJobAuth, JOB_SCHEMAS, type JobName, REMEDIATION_QUEUE } from '@pgreplica/protocol';
import { type Config, closeServer, createServiceApp, type HttpServer, listen, runShutdownSteps } from '@pgreplica/runtime';
import { type Job, UnrecoverableError, WaitingError, Worker } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import { ClusterAccess } from './cluster-access.js';
import type { JobContext } from './context.js';
import { fence } from './jobs/fence.js';
import { promote } from './jobs/promote.js';
import { rejoin } from './jobs/rejoin.js';
import { repointReplica } from './jobs/repoint-replica.js';
import { slotCleanup } from './jobs/slot-cleanup.js';
import { switchover } from './jobs/switchover.js';
import { syncStandbys } from './jobs/sync-standbys.js';

/** Lifecycle of a {@link RemediationWorker}. */
export type WorkerStatus = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

/**
 * pgreplica's remediation worker: BullMQ workers on the cluster's queue,
 * one job at a time (changes to the cluster are serial), every start,
 * success and failure published on the bus and kept in the job's result.
 */
export class RemediationWorker {
  readonly config: Config;
  readonly keys: BusKeys;
  readonly registry = new Registry();
  readonly #logger: Logger;
  readonly #refused = new Counter({
    name: 'pgreplica_worker_jobs_refused_total',
    help: 'Jobs refused before they ran (unknown name, invalid payload, other cluster, unsigned, bad signature, expired, replayed), by job and reason.',
    labelNames: ['job', 'reason'],
    registers: [this.registry],
  });
  readonly #stateRejected = new Counter({
    name: 'pgreplica_worker_state_rejected_total',
    help: 'Remediation state read from Redis (promotion progress, last failover, slot first-seen, synchronous standbys) not signed with the bus key, by reason.',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly #jobs = new Counter({ name: 'pgreplica_worker_jobs_total', help: 'Remediation jobs by name and outcome.', labelNames: ['job', 'outcome'], registers: [this.registry] });
  readonly #duration = new Histogram({ name: 'pgreplica_worker_job_duration_seconds', help: 'Duration of remediation jobs.', labelNames: ['job'], buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120], registers: [this.registry] });
  #status: WorkerStatus = 'idle';
  #redis: Redis | Cluster | undefined;
  #bullRedis: Redis | Cluster | undefined;
  #worker: Worker | undefined;
  #server: HttpServer | undefined;
  #httpPort = 0;
  #publisher: BusPublisher | undefined;
  #authority: AuthorityStore | undefined;
  #changeLock: ChangeLock | undefined;
  #ledger: RemediationLedger | undefined;
  #cluster: ClusterAccess;
  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  constructor(config: Config, logger: Logger) {
    this.config = config;
    this.keys = busKeys(config.cluster);
    this.#logger = logger;
    this.#cluster = new ClusterAccess(config);
    collectDefaultMetrics({ register: this.registry });
  }

  get status(): WorkerStatus {
    return this.#status;
  }

  get httpPort(): number {
    return this.#httpPort;
  }

  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    this.#status = 'starting';
    const name = `pgreplica-worker:${this.config.instanceId}`;
    const { command, bullmq } = connectServiceRedis(this.config.redis, name, this.#logger);
    this.#redis = command;
    this.#bullRedis = bullmq;
    this.#publisher = new BusPublisher({
      redis: this.#redis,
      keys: this.keys,
      cluster: this.config.cluster,
      instanceId: this.config.instanceId,
      key: this.config.busKey,
      streamMaxLen: this.config.bus.streamMaxLen,
      fenced: false,
    });
    this.#authority = new AuthorityStore(this.#redis, this.keys, this.config.busKey);
    this.#changeLock = new ChangeLock(this.#redis, this.keys);
    this.#ledger = new RemediationLedger(this.#redis, this.keys, this.config.busKey, (key, reason) => {
      this.#stateRejected.inc({ reason });
      this.#logger.warn({ key, reason }, 'remediation state on the bus is not signed with the bus key: treated as absent');
    });

    const app = createServiceApp({
      health: () => ({ ok: this.#status === 'running' && this.#worker?.isRunning() === true, status: this.#status }),
      registry: this.registry,
      token: this.config.workerHttpToken,
    });
    const { host, port } = this.config.worker.http;
    const listening = await listen(app, host, port);
    this.#server = listening.server;
    this.#httpPort = listening.port;

    this.#worker = new Worker(REMEDIATION_QUEUE, (job, token, signal) => this.#process(job, token, signal), {
      connection: this.#bullRedis,
      prefix: this.keys.queuePrefix,
      concurrency: 1,
      stalledInterval: this.config.worker.stalledIntervalMs,
      lockDuration: this.config.worker.lockDurationMs,
      // A re-delivered job re-checks everything and resumes from its recorded
      // progress (the change lock and the epoch bump are fenced), so a job whose
      // worker died or stalled may be taken over several times.
      maxStalledCount: 5,
      autorun: true,
    });
    // While Redis is away (restarting, failing over) BullMQ reports every reconnection attempt: the connection's
    // own errors are logged at debug already, and what fails for good is reported where it matters.
    this.#worker.on('error', (err) => this.#logger[this.#bullRedis?.status === 'ready' ? 'warn' : 'debug']({ err }, 'worker error'));
    this.#status = 'running';
    this.#logger.info({ cluster: this.config.cluster, http: `${host}:${this.#httpPort}` }, 'worker started');
  }

  async #process(job: Job, token: string | undefined, signal: AbortSignal | undefined): Promise<unknown> {
    // Own properties only: a job named "constructor" or "__proto__" is unknown, not Object's.
    if (!Object.hasOwn(JOB_SCHEMAS, job.name)) throw this.#refuse(job, 'unknown', 'unknown-job', `unknown job "${job.name}"`);
    const name = job.name as JobName;
    const schema = JOB_SCHEMAS[name];
    const parsed = schema.safeParse(job.data);
    if (!parsed.success) throw this.#refuse(job, name, 'invalid', `invalid ${job.name} payload: ${parsed.error.message}`);
    if (parsed.data.cluster !== this.config.cluster) throw this.#refuse(job, name, 'other-cluster', `job for cluster ${parsed.data.cluster}, this worker serves ${this.config.cluster}`);
    const auth = checkJobAuth(name, job.data as Record<string, unknown>, this.config.busKey);
    if (auth) throw this.#refuse(job, name, auth, `job ${auth === 'expired' ? 'expired' : `not signed with the bus key (${auth})`}: only the monitor and the CLI, which hold the key, may enqueue jobs`);
    const nonceKey = parsed.data.auth ? this.keys.jobNonce(parsed.data.auth.nonce) : null;
    if (nonceKey && parsed.data.auth && !(await this.#claimNonce(nonceKey, String(job.id), parsed.data.auth.exp))) {
      throw this.#refuse(job, name, 'replayed', 'job refused: its signed proof was already used by another job (a copy)');
    }
    const logger = this.#logger.child({ job: job.name, jobId: job.id, attempt: job.attemptsMade + 1 });
    const ctx: JobContext = {
      config: this.config,
      cluster: this.#cluster,
      authority: this.#authority!,
      changeLock: this.#changeLock!,
      ledger: this.#ledger!,
      logger,
      signal,
      changed: [],
      publish: async (type, payload, epoch) => {
        try {
          await this.#publisher!.publish(type, payload, epoch);
        } catch (err) {
          logger.warn({ err, type }, 'cannot publish on the bus');
        }
      },
    };
    logger.info({ data: job.data }, 'job started');
    const timer = this.#duration.startTimer({ job: job.name });
    try {
      let result: unknown;
      switch (name) {
        case 'slot-cleanup':
          result = await slotCleanup(JOB_SCHEMAS['slot-cleanup'].parse(job.data), ctx);
          break;
        case 'promote':
          result = await promote(JOB_SCHEMAS.promote.parse(job.data), ctx, String(job.id));
          break;
        case 'switchover':
          result = await switchover(JOB_SCHEMAS.switchover.parse(job.data), ctx, String(job.id));
          break;
        case 'fence':
          result = await fence(JOB_SCHEMAS.fence.parse(job.data), ctx, String(job.id));
          break;
        case 'sync-standbys':
          result = await syncStandbys(JOB_SCHEMAS['sync-standbys'].parse(job.data), ctx, String(job.id));
          break;
        case 'rejoin':
          result = await rejoin(JOB_SCHEMAS.rejoin.parse(job.data), ctx, String(job.id));
          break;
        case 'repoint':
          result = await repointReplica(JOB_SCHEMAS.repoint.parse(job.data), ctx, String(job.id));
          break;
      }
      this.#jobs.inc({ job: job.name, outcome: 'ok' });
      await this.#spendNonce(nonceKey);
      logger.info({ result, changed: ctx.changed }, 'job finished');
      return { result, changed: ctx.changed };
    } catch (err) {
      if (signal?.aborted && !(err instanceof UnrecoverableError) && token !== undefined) {
        // Stopped at a safe point because this worker shuts down: not a failure and not an
        // attempt. Back to the queue, where another worker (or this one, restarted) resumes it.
        const requeued = await job.moveToWait(token).then(
          () => true,
          (moveErr: unknown) => {
            logger.warn({ err: moveErr }, 'cannot put the interrupted job back in the queue');
            return false;
          },
        );
        if (requeued) {
          this.#jobs.inc({ job: job.name, outcome: 'interrupted' });
          logger.warn({ err, changed: ctx.changed }, 'job interrupted by shutdown; back in the queue');
          throw new WaitingError();
        }
      }
      this.#jobs.inc({ job: job.name, outcome: 'failed' });
      const record = await this.#authority!.primaryRecord().catch(() => null);
      await ctx.publish('remediation.failed', { job: job.name, jobId: String(job.id), error: (err as Error).message, changed: ctx.changed }, record?.epoch ?? 0);
      logger.error({ err, changed: ctx.changed }, 'job failed');
      if (err instanceof UnrecoverableError) await this.#spendNonce(nonceKey);
      if (ctx.changed.length === 0) throw err;
      // BullMQ keeps the message: make it say exactly what changed before the failure.
      const message = `${(err as Error).message} (changed before failing: ${ctx.changed.join('; ')})`;
      throw err instanceof UnrecoverableError ? Object.assign(new UnrecoverableError(message), { cause: err }) : new Error(message, { cause: err });
    } finally {
      timer();
    }
  }

  /** Counts, logs and returns the error for a job refused before it ran (nothing was touched). */
  #refuse(job: Job, name: string, reason: string, message: string): UnrecoverableError {
    this.#refused.inc({ job: name, reason });
    this.#logger.warn({ job: name, jobId: job.id, reason }, message);
    return new UnrecoverableError(message);
  }

  /**
   * Claims a signed job's nonce for this job id: a re-delivery of the same job
   * (retry, stalled worker) keeps its claim; a copy under another id, or any
   * job after the first one finished, is refused. Kept past the proof's expiry.
   */
  async #claimNonce(nonceKey: string, jobId: string, exp: string): Promise<boolean> {
    const ttlMs = Math.max(60_000, Date.parse(exp) - Date.now() + 60_000);
    if ((await this.#redis!.set(nonceKey, jobId, 'PX', ttlMs, 'NX')) === 'OK') return true;
    return (await this.#redis!.get(nonceKey)) === jobId;
  }

  /** Marks a nonce used up once its job has finished for good (no re-run may use it). */
  async #spendNonce(nonceKey: string | null): Promise<void> {
    if (nonceKey) await this.#redis!.set(nonceKey, 'spent', 'KEEPTTL').catch(() => {});
  }

  /** Stops taking jobs, waits for the running one (bounded by BullMQ), then closes connections. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#starting?.catch(() => {});
      this.#status = 'stopping';
      await runShutdownSteps(
        [
          // BullMQ's close() waits for the running job but does not abort it:
          // cancel it so it stops at its next safe point (before a destructive step).
          ['cancel', async () => this.#worker?.cancelAllJobs('worker shutting down')],
          // With Redis away (restarting, failing over), BullMQ's close() waits for its
          // blocking connection to end, and ioredis never ends a connection that
          // waits to reconnect: it would wait forever. Nothing can finish without
          // Redis anyway: close at once; a job cut short is re-delivered and resumes.
          ['worker', async () => this.#worker?.close(this.#bullRedis?.status !== 'ready')],
          ['http', () => closeServer(this.#server)],
          ['redis', () => closeRedis(this.#redis, this.#bullRedis)],
        ],
        (err, step) => this.#logger.warn({ err, step }, 'shutdown step failed'),
      );
      this.#status = 'stopped';
      this.#logger.info('worker stopped');
    })();
    return this.#closing;
  }
}
