#!/usr/bin/env node
/**
 * pgreplica-worker --config <file>  (the monitor's config file; its `worker` section)
 *
 * Exit codes: 0 clean shutdown, 1 runtime failure or shutdown timeout, 2 bad arguments or configuration.
 * PGREPLICA_WORKER_STALLED_INTERVAL_MS tunes BullMQ's stalled-job check (default 30 000).
 */
import { mainOf } from '@pgreplica/monitor';
import { RemediationWorker } from './remediation-worker.js';

mainOf({
  name: 'pgreplica-worker',
  // A running job gets this long to finish.
  shutdownGraceMs: 20_000,
  create: (config, logger) => {
    const stalledIntervalMs = Number(process.env.PGREPLICA_WORKER_STALLED_INTERVAL_MS || 30_000);
    return new RemediationWorker(config, logger, { stalledIntervalMs, lockDurationMs: Math.max(stalledIntervalMs, 5_000) });
  },
});
