#!/usr/bin/env node
/**
 * pgreplica-worker --config <file>  (the shared config file; its `worker` section)
 *
 * Exit codes: 0 clean shutdown, 1 runtime failure or shutdown timeout, 2 bad arguments or configuration.
 */
import { mainOf } from '@pgreplica/runtime';
import { RemediationWorker } from './remediation-worker.js';

// A running job gets this long to finish.
mainOf({ name: 'pgreplica-worker', shutdownGraceMs: 20_000, create: (config, logger) => new RemediationWorker(config, logger) });
