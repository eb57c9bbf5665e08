import { ClusterAssessor, DEFAULT_HEALTH_THRESHOLDS, NodeProber, type NodeSpec } from '@pgreplica/probe';
import type { NodeState, Topology } from '@pgreplica/protocol';
import type pg from 'pg';

/**
 * The router's own probing, with the monitor's probe code: used when the bus
 * is stale (`fallback: 'probe'`) and when there is no Redis at all. It judges
 * roles, lag (from the primary's view: replay_lag and LSN distance) and
 * status, and produces a topology like the monitor's.
 */
export class ProbeSource {
  readonly #probers: NodeProber[];
  readonly #assessor: ClusterAssessor;
  readonly #intervalMs: number;
  readonly #cluster: string;
  readonly #onTopology: (t: Topology) => void;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #primaryId: string | null;
  #epoch: number;
  #systemIdentifier: string | null;

  constructor(options: {
    cluster: string;
    nodes: readonly NodeSpec[];
    connection: { user: string; password?: string | undefined; database: string; ssl?: pg.ClientConfig['ssl'] };
    intervalMs: number;
    known: { epoch: number; primaryId: string | null; systemIdentifier: string | null };
    onTopology: (t: Topology) => void;
  }) {
    this.#cluster = options.cluster;
    this.#intervalMs = options.intervalMs;
    this.#onTopology = options.onTopology;
    this.#primaryId = options.known.primaryId;
    this.#epoch = options.known.epoch;
    this.#systemIdentifier = options.known.systemIdentifier;
    this.#probers = options.nodes.map(
      (n) =>
        new NodeProber(
          { id: n.id, host: n.host, port: n.port },
          { ...options.connection, connectTimeoutMs: 1_000, statementTimeoutMs: 1_500, applicationName: 'pgreplica-router-probe' },
        ),
    );
    this.#assessor = new ClusterAssessor(options.nodes, { ...DEFAULT_HEALTH_THRESHOLDS, rise: 1, fall: 2 }, null);
  }

  /** Probes now and then every interval until {@link stop}. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    const tick = async () => {
      if (!this.#running) return;
      await this.probeOnce().catch(() => {});
      if (this.#running) {
        this.#timer = setTimeout(() => void tick(), this.#intervalMs);
        this.#timer.unref();
      }
    };
    void tick();
  }

  /** One probe round; returns the topology it produced. */
  async probeOnce(): Promise<Topology> {
    const results = await Promise.all(this.#probers.map((p) => p.probe()));
    const writable = results.filter((r) => r.ok && !r.sample.inRecovery);
    // Without the bus, the only evidence of who is primary is who takes writes:
    // keep the known one while it does; adopt a sole writable node otherwise.
    if (!writable.some((r) => r.nodeId === this.#primaryId) && writable.length === 1) this.#primaryId = writable[0]!.nodeId;
    for (const r of writable) if (r.ok && r.nodeId === this.#primaryId) this.#systemIdentifier ??= r.sample.systemIdentifier;
    const round = this.#assessor.assess(results, { epoch: this.#epoch, primaryId: this.#primaryId, systemIdentifier: this.#systemIdentifier });
    const nodes: NodeState[] = round.nodes;
    const topology: Topology = {
      cluster: this.#cluster,
      epoch: this.#epoch,
      primaryId: this.#primaryId,
      systemIdentifier: this.#systemIdentifier,
      nodes,
      observedAt: new Date().toISOString(),
    };
    if (this.#running) this.#onTopology(topology);
    return topology;
  }

  stop(): void {
    this.#running = false;
    clearTimeout(this.#timer);
  }

  async close(): Promise<void> {
    this.stop();
    await Promise.all(this.#probers.map((p) => p.close()));
  }
}
