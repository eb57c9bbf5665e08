import { ClusterAssessor, DEFAULT_HEALTH_THRESHOLDS, NodeProber, type NodeSpec, type ProbeResult } from '@pgreplica/probe';
import type { NodeState, Topology } from '@pgreplica/protocol';
import type pg from 'pg';

/** Who the router knows as primary, read at every round (the bus may have moved on meanwhile). */
export interface KnownPrimary {
  epoch: number;
  primaryId: string | null;
  systemIdentifier: string | null;
}

/**
 * Which writable node is the primary, by the database's own record: the one
 * whose `pgreplica.epoch` is highest (a deposed primary keeps a lower epoch);
 * among equals the known primary, else a sole writable node. Never below the
 * known epoch. Pure.
 */
export function choosePrimary(results: readonly ProbeResult[], known: KnownPrimary): KnownPrimary {
  const writable = results.flatMap((r) => (r.ok && !r.sample.inRecovery ? [{ id: r.nodeId, epoch: r.sample.epoch?.epoch ?? 0, sysid: r.sample.systemIdentifier }] : []));
  if (writable.length === 0) return known;
  const top = Math.max(...writable.map((w) => w.epoch));
  const best = writable.filter((w) => w.epoch === top);
  const chosen = best.find((w) => w.id === known.primaryId) ?? (best.length === 1 ? best[0] : undefined);
  if (!chosen || top < known.epoch) return known;
  return { epoch: Math.max(known.epoch, top), primaryId: chosen.id, systemIdentifier: known.systemIdentifier ?? chosen.sysid };
}

/**
 * The router's own probing, with the monitor's probe code: used when the bus
 * is stale and when there is no Redis at all. It judges roles, lag (from the
 * primary's view: replay_lag and LSN distance) and status, finds the primary
 * by the epoch each node records, and produces a topology like the monitor's.
 */
export class ProbeSource {
  readonly #probers: NodeProber[];
  readonly #assessor: ClusterAssessor;
  readonly #intervalMs: number;
  readonly #cluster: string;
  readonly #known: () => KnownPrimary;
  readonly #onTopology: (t: Topology) => void;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #last: KnownPrimary | null = null;

  constructor(options: {
    cluster: string;
    nodes: readonly NodeSpec[];
    connection: { user: string; password?: string | undefined; database: string; ssl?: pg.ClientConfig['ssl'] };
    intervalMs: number;
    known: () => KnownPrimary;
    onTopology: (t: Topology) => void;
  }) {
    this.#cluster = options.cluster;
    this.#intervalMs = options.intervalMs;
    this.#onTopology = options.onTopology;
    this.#known = options.known;
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

  /** One probe round; returns the topology it produced (reported to `onTopology` while running). */
  async probeOnce(): Promise<Topology> {
    const results = await Promise.all(this.#probers.map((p) => p.probe()));
    const known = this.#known();
    // What an earlier round found may be ahead of what the router applied so far.
    const base = this.#last && this.#last.epoch > known.epoch ? this.#last : known;
    const primary = choosePrimary(results, base);
    this.#last = primary;
    const round = this.#assessor.assess(results, primary);
    const nodes: NodeState[] = round.nodes;
    const topology: Topology = { cluster: this.#cluster, ...primary, nodes, observedAt: new Date().toISOString() };
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
