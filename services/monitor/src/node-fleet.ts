import {
  ClusterAssessor,
  HeartbeatTracker,
  type NodeProber,
  NodeProber as Prober,
  type NodeSample,
  type NodeSpec,
  PGREPLICA_SCHEMA_SQL,
  type ProbeResult,
} from '@pgreplica/probe';
import { type Config, probeConnection } from '@pgreplica/runtime';
import type { Logger } from 'pino';
import type { MonitorMetrics } from './metrics.js';
import { NodeLoop } from './node-loop.js';

/** pgreplica's schema or tables do not exist yet. */
export const MISSING_STATE = new Set(['42P01', '3F000']);

/**
 * Every node's prober and probe loop, the heartbeat they write and read, and
 * the assessor that judges their results: what the monitor measures, apart
 * from what it decides and publishes.
 */
export class NodeFleet {
  readonly assessor: ClusterAssessor;
  readonly #probers: NodeProber[];
  readonly #loops: NodeLoop[];

  constructor(config: Config, logger: Logger, metrics: MonitorMetrics, isPrimary: (nodeId: string) => boolean) {
    const heartbeat = {
      tracker: new HeartbeatTracker(),
      instanceId: config.instanceId,
      enabled: config.monitor.writeHeartbeat,
      onDisabled: (reason: string) =>
        logger.warn(
          { reason },
          'no write rights for the heartbeat table on the primary: time lag falls back to pg_stat_replication.replay_lag (grant as documented in the README)',
        ),
    };
    const specs: NodeSpec[] = config.nodes.map((n) => ({ id: n.id, host: n.host, port: n.port, priority: n.priority, weight: n.weight, zone: n.zone, tags: n.tags, thresholds: n.lag }));
    this.assessor = new ClusterAssessor(specs, config.monitor.thresholds, heartbeat.tracker);
    const connection = { ...probeConnection(config, 'pgreplica-monitor'), heartbeatId: config.instanceId };
    this.#probers = config.nodes.map((n) => new Prober({ id: n.id, host: n.host, port: n.port }, connection));
    this.#loops = this.#probers.map(
      (prober) =>
        new NodeLoop({
          prober,
          intervalMs: config.monitor.probeIntervalMs,
          logger: logger.child({ component: 'node-loop', nodeId: prober.target.id }),
          metrics,
          hooks: { isAuthorityPrimary: isPrimary },
          heartbeat,
        }),
    );
  }

  /** Starts every probe loop until `signal` aborts. */
  start(signal: AbortSignal): void {
    for (const loop of this.#loops) loop.start(signal);
  }

  /** The result of each node to judge now (a hung probe counts as a timeout). */
  results(nowMs: number): ProbeResult[] {
    return this.#loops.map((l) => l.resultFor(nowMs)).filter((r) => r !== null);
  }

  /** A node's latest successful sample. */
  sampleOf(nodeId: string): NodeSample | null {
    return this.assessor.sampleOf(nodeId);
  }

  /** The prober of a node, for one-off statements. */
  prober(nodeId: string): NodeProber | undefined {
    return this.#probers.find((p) => p.target.id === nodeId);
  }

  /**
   * Runs a statement on a node over its probe connection, creating
   * pgreplica's tables first when they are missing.
   * @throws when the node is unknown or the statement fails
   */
  async execute(nodeId: string, sql: string, params: unknown[]): Promise<unknown> {
    const prober = this.prober(nodeId);
    if (!prober) throw new Error(`unknown node "${nodeId}"`);
    try {
      return await prober.query(sql, params);
    } catch (err) {
      if (!MISSING_STATE.has((err as { code?: string }).code ?? '')) throw err;
      await prober.query(PGREPLICA_SCHEMA_SQL);
      return prober.query(sql, params);
    }
  }

  /** Waits for the loops (after the signal aborted), then closes the connections. */
  async close(): Promise<void> {
    await Promise.all(this.#loops.map((l) => l.stopped()));
    await Promise.all(this.#probers.map((p) => p.close()));
  }
}
