#!/usr/bin/env node
/**
 * pgreplica-monitor --config <file>
 *
 * Exit codes: 0 clean shutdown, 1 runtime failure or shutdown timeout,
 * 2 bad arguments or configuration.
 */
import { mainOf } from '@pgreplica/runtime';
import { Monitor } from './monitor.js';

// Bounded below the usual orchestrator kill timeouts (systemd 90 s, Kubernetes 30 s).
mainOf({ name: 'pgreplica-monitor', shutdownGraceMs: 10_000, create: (config, logger) => new Monitor(config, logger) });
