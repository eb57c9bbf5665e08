import { randomUUID } from 'node:crypto';
import { REMEDIATION_QUEUE, signJob } from '@pgreplica/protocol';
import { Queue } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { MonitorMetrics } from './metrics.js';
import type { PlannedJob } from './remediation-planner.js';

/** How long after adding a job the same condition may trigger another (a job that ended without fixing it). */
export const RETRIGGER_AFTER_MS: Record<PlannedJob['name'], number> = {
  promote: 5_000,
  fence: 5_000,
  switchover: 0,
  repoint: 5_000,
  'slot-cleanup': 60_000,
  'sync-standbys': 2_000,
  rejoin: 30_000,
};

/**
 * The monitor's side of the remediation queue. Jobs are deduplicated while
 * pending or running (BullMQ deduplication on the condition's id, shared by
 * every monitor), not forever: a condition that persists after its job ended
 * (a promotion aborted because the primary was briefly reachable, a slot kept
 * inside its grace period) triggers again, at most once per
 * {@link RETRIGGER_AFTER_MS}. Retries with back-off: every job re-checks its
 * preconditions when it runs and is idempotent.
 */
export class RemediationQueue {
  readonly #queue: Queue;
  readonly #logger: Logger;
  readonly #metrics: MonitorMetrics;
  readonly #lastAdded = new Map<string, number>();
  readonly #key: string | undefined;

  /** @param key the bus key: every job is signed with it (the worker refuses unsigned ones when it has the key). */
  constructor(connection: Redis | Cluster, prefix: string, logger: Logger, metrics: MonitorMetrics, key?: string) {
    this.#key = key;
    this.#queue = new Queue(REMEDIATION_QUEUE, { connection, prefix, defaultJobOptions: { removeOnComplete: 1000, removeOnFail: 1000 } });
    this.#queue.on('error', (err) => logger.debug({ err }, 'queue error'));
    this.#logger = logger;
    this.#metrics = metrics;
  }

  /** Adds a job for a condition, unless one is pending or ran too recently. Never throws: a failure is logged and retried next round. */
  async enqueue(job: PlannedJob, nowMs: number = Date.now()): Promise<void> {
    const last = this.#lastAdded.get(job.dedupeId);
    if (last !== undefined && nowMs - last < RETRIGGER_AFTER_MS[job.name]) return;
    this.#lastAdded.set(job.dedupeId, nowMs);
    for (const [id, at] of this.#lastAdded) if (nowMs - at > 10 * 60_000) this.#lastAdded.delete(id);
    try {
      const added = await this.#queue.add(job.name, signJob(job.name, job.payload, this.#key), {
        jobId: `${job.dedupeId}.${randomUUID()}`,
        deduplication: { id: job.dedupeId },
        attempts: 5,
        backoff: { type: 'exponential', delay: 500 },
      });
      this.#metrics.jobsEnqueued.inc({ job: job.name });
      this.#logger.info({ job: job.name, jobId: added.id, dedupeId: job.dedupeId }, 'remediation job enqueued');
    } catch (err) {
      this.#lastAdded.delete(job.dedupeId);
      this.#logger.warn({ err, job: job.name }, 'cannot enqueue remediation job');
    }
  }

  async close(): Promise<void> {
    await this.#queue.close();
  }
}
