import { setTimeout as sleep } from 'node:timers/promises';
import { HEARTBEAT_WRITE_QUERY, type HeartbeatTracker, type NodeProber, PGREPLICA_SCHEMA_SQL, type ProbeResult } from '@pgreplica/probe';
import type { Logger } from 'pino';
import type { MonitorMetrics } from './metrics.js';

/** What a probe loop asks the monitor on each probe. */
export interface NodeLoopHooks {
  /** Whether this node is the primary of the current epoch (the heartbeat goes there). */
  isAuthorityPrimary(nodeId: string): boolean;
}

const MISSING_TABLE = new Set(['42P01', '3F000']);
// 42501: no privilege (permanent). 25006 (read-only) is transient: a primary being switched over.
const NO_WRITE_RIGHTS = new Set(['42501']);

/**
 * Probes one node on its own schedule, so a hung node never delays the
 * others: the assessment round reads the latest result and, when a probe has
 * been outstanding too long, counts it as a timeout. On the primary it also
 * writes this monitor's heartbeat row after each probe.
 */
export class NodeLoop {
  readonly nodeId: string;
  readonly #prober: NodeProber;
  readonly #intervalMs: number;
  readonly #logger: Logger;
  readonly #metrics: MonitorMetrics;
  readonly #hooks: NodeLoopHooks;
  readonly #heartbeat: { tracker: HeartbeatTracker; instanceId: string; enabled: boolean; onDisabled(reason: string): void } | null;
  #latest: ProbeResult | null = null;
  #inFlightSince: number | null = null;
  #loop: Promise<void> | undefined;
  #schemaEnsured = false;

  constructor(options: {
    prober: NodeProber;
    intervalMs: number;
    logger: Logger;
    metrics: MonitorMetrics;
    hooks: NodeLoopHooks;
    heartbeat: { tracker: HeartbeatTracker; instanceId: string; enabled: boolean; onDisabled(reason: string): void } | null;
  }) {
    this.nodeId = options.prober.target.id;
    this.#prober = options.prober;
    this.#intervalMs = options.intervalMs;
    this.#logger = options.logger;
    this.#metrics = options.metrics;
    this.#hooks = options.hooks;
    this.#heartbeat = options.heartbeat;
  }

  /** Starts probing until `signal` aborts. */
  start(signal: AbortSignal): void {
    this.#loop ??= this.#run(signal);
  }

  /** Resolves when the loop has stopped. */
  async stopped(): Promise<void> {
    await this.#loop;
  }

  /**
   * The result the assessment round should use now: the latest one, or a
   * timeout when a probe has been outstanding for more than one and a half
   * intervals (a hung node answers nothing, however long we wait).
   */
  resultFor(nowMs: number): ProbeResult | null {
    if (this.#inFlightSince !== null && nowMs - this.#inFlightSince > this.#intervalMs * 1.5) {
      return {
        ok: false,
        nodeId: this.nodeId,
        startedAt: new Date(this.#inFlightSince),
        durationMs: nowMs - this.#inFlightSince,
        failure: 'timeout',
        error: `no answer for ${nowMs - this.#inFlightSince} ms`,
      };
    }
    return this.#latest;
  }

  async #run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const started = Date.now();
      this.#inFlightSince = started;
      const result = await this.#prober.probe();
      this.#inFlightSince = null;
      this.#latest = result;
      this.#metrics.probeDuration.observe({ node: this.nodeId, outcome: result.ok ? 'ok' : result.failure }, result.durationMs / 1000);
      if (result.ok && !result.sample.inRecovery && this.#heartbeat?.enabled && this.#hooks.isAuthorityPrimary(this.nodeId)) {
        await this.#writeHeartbeat();
      }
      const waitMs = Math.max(0, this.#intervalMs - (Date.now() - started));
      try {
        await sleep(waitMs, undefined, { signal });
      } catch {
        return; // aborted
      }
    }
  }

  async #writeHeartbeat(): Promise<void> {
    const hb = this.#heartbeat!;
    const seq = hb.tracker.nextSeq();
    const write = () => this.#prober.query(HEARTBEAT_WRITE_QUERY, [hb.instanceId, seq]);
    try {
      if (!this.#schemaEnsured) {
        // Once per loop: pgreplica's tables (heartbeat, epoch, term) exist on the
        // primary; IF NOT EXISTS makes it a no-op where an admin created them.
        await this.#prober.query(PGREPLICA_SCHEMA_SQL).catch((err: unknown) => {
          if (!NO_WRITE_RIGHTS.has((err as { code?: string }).code ?? '')) throw err;
        });
        this.#schemaEnsured = true;
      }
      try {
        await write();
      } catch (err) {
        if (!MISSING_TABLE.has((err as { code?: string }).code ?? '')) throw err;
        this.#logger.info("creating pgreplica's tables (heartbeat, epoch, term)");
        await this.#prober.query(PGREPLICA_SCHEMA_SQL);
        await write();
      }
      hb.tracker.recordCommit(seq, Date.now());
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      if (NO_WRITE_RIGHTS.has(code)) {
        hb.enabled = false;
        hb.onDisabled(`${code}: ${(err as Error).message}`);
      } else {
        this.#logger.debug({ err }, 'heartbeat write failed');
      }
    }
  }
}
