import { REMEDIATION_QUEUE } from '@pgreplica/protocol';
import { Queue } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { MonitorMetrics } from './metrics.js';
import type { PlannedJob } from './remediation-planner.js';

/**
 * The monitor's side of the remediation queue: adds planned jobs under
 * their deterministic ids (a duplicate is a no-op) with retries and
 * back-off — every job re-checks its preconditions when it runs and is
 * idempotent, so a retry is safe.
 */
export class RemediationQueue {
  readonly #queue: Queue;
  readonly #logger: Logger;
  readonly #metrics: MonitorMetrics;
  readonly #enqueued = new Set<string>();

  constructor(connection: Redis | Cluster, prefix: string, logger: Logger, metrics: MonitorMetrics) {
    this.#queue = new Queue(REMEDIATION_QUEUE, { connection, prefix, defaultJobOptions: { removeOnComplete: 1000, removeOnFail: 1000 } });
    this.#queue.on('error', (err) => logger.debug({ err }, 'queue error'));
    this.#logger = logger;
    this.#metrics = metrics;
  }

  /** Adds a job unless this instance already added it. Never throws: a failure is logged and retried next round. */
  async enqueue(job: PlannedJob): Promise<void> {
    if (this.#enqueued.has(job.jobId)) return;
    this.#enqueued.add(job.jobId);
    try {
      await this.#queue.add(job.name, job.payload, { jobId: job.jobId, attempts: 5, backoff: { type: 'exponential', delay: 1_000 } });
      this.#metrics.jobsEnqueued.inc({ job: job.name });
      this.#logger.info({ job: job.name, jobId: job.jobId }, 'remediation job enqueued');
    } catch (err) {
      this.#enqueued.delete(job.jobId);
      this.#logger.warn({ err, job: job.name }, 'cannot enqueue remediation job');
    }
  }

  async close(): Promise<void> {
    await this.#queue.close();
  }
}
