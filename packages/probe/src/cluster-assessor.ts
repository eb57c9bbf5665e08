import type { NodeRole, NodeState, NodeStatus, NodeTag } from '@pgreplica/protocol';
import { applyVerdict, type HealthThresholds, initialHealth, type TrackedHealth, type Verdict } from './health.js';
import type { HeartbeatTracker } from './heartbeat.js';
import { judgeReplica, newReplicaMemory, type PrimaryView, type ReplicaMemory } from './replica-verdict.js';
import type { NodeSample, ProbeResult } from './types.js';

/** A configured node. */
export interface NodeSpec {
  id: string;
  host: string;
  port: number;
  /** Lower wins. */
  priority: number;
  weight: number;
  zone?: string | undefined;
  tags: NodeTag[];
  /** Per-node overrides of the cluster's lag limits. */
  thresholds?: Partial<HealthThresholds> | undefined;
}

/** Who is primary, per the bus (the worker and the bootstrap write it). */
export interface Authority {
  epoch: number;
  primaryId: string | null;
  /** The cluster's system identifier; nodes with another one are foreign. */
  systemIdentifier: string | null;
  /** Former primaries: writable again, they are `stale-primary` rather than `second-primary`. */
  formerPrimaryIds?: readonly string[];
  /**
   * A worker job holds the cluster change lock (a switchover draining the
   * primary, a promotion, a fence…): the primary may be read-only on purpose.
   * Unknown (Redis unreachable, the router's probe mode) counts as false.
   * @default false
   */
  changeLockHeld?: boolean;
}

/** A node whose status or reason changed this round. */
export interface StatusChange {
  nodeId: string;
  from: NodeStatus;
  to: NodeStatus;
  reason: NodeState['reason'];
  detail?: string | undefined;
  node: NodeState;
}

/** What one round established. */
export interface RoundAssessment {
  nodes: NodeState[];
  changes: StatusChange[];
  /** The authority primary's sample of this round, if it answered as a primary. */
  primarySample: NodeSample | null;
  /** Nodes that answered this round. */
  reachable: Set<string>;
  /** Nodes that answered as primaries (not in recovery). */
  writable: string[];
}

interface NodeRecord {
  health: TrackedHealth;
  role: NodeRole;
  sample: NodeSample | null;
  replica: ReplicaMemory;
  consecutiveFailures: number;
  lastCheckAt: Date | null;
  lagMs: number | null;
  lagBytes: number | null;
  lastReason: NodeState['reason'];
}

/**
 * Turns probe results into node states, round after round: measures lag,
 * decides role and status with hysteresis, and reports what changed. Pure
 * logic (no I/O); the monitor and the router's probe mode both use it.
 */
export class ClusterAssessor {
  readonly #specs: Map<string, NodeSpec>;
  readonly #thresholds: HealthThresholds;
  readonly #heartbeat: HeartbeatTracker | null;
  readonly #records = new Map<string, NodeRecord>();
  /** When the primary of the authority last answered as a primary. */
  #primarySeen: { id: string; at: Date } | null = null;

  constructor(specs: readonly NodeSpec[], thresholds: HealthThresholds, heartbeat: HeartbeatTracker | null) {
    this.#specs = new Map(specs.map((s) => [s.id, s]));
    this.#thresholds = thresholds;
    this.#heartbeat = heartbeat;
    const now = new Date();
    for (const spec of specs) {
      this.#records.set(spec.id, {
        health: initialHealth(now),
        role: 'unknown',
        sample: null,
        replica: newReplicaMemory(),
        consecutiveFailures: 0,
        lastCheckAt: null,
        lagMs: null,
        lagBytes: null,
        lastReason: 'not-probed',
      });
    }
  }

  /** The latest successful sample of a node. */
  sampleOf(nodeId: string): NodeSample | null {
    return this.#records.get(nodeId)?.sample ?? null;
  }

  /** Judges one round of probes (one per configured node). */
  assess(probes: readonly ProbeResult[], authority: Authority, now: Date = new Date()): RoundAssessment {
    const byId = new Map(probes.map((p) => [p.nodeId, p]));
    const reachable = new Set(probes.filter((p) => p.ok).map((p) => p.nodeId));
    const writable = probes.filter((p) => p.ok && !p.sample.inRecovery).map((p) => p.nodeId);
    const primaryProbe = authority.primaryId ? byId.get(authority.primaryId) : undefined;
    const primarySample = primaryProbe?.ok && !primaryProbe.sample.inRecovery ? primaryProbe.sample : null;
    if (primarySample && authority.primaryId) this.#primarySeen = { id: authority.primaryId, at: primaryProbe!.startedAt };
    const primary = {
      id: authority.primaryId,
      sample: primarySample,
      lastSeenAt: this.#primarySeen?.id === authority.primaryId ? this.#primarySeen.at : null,
    };

    const changes: StatusChange[] = [];
    const nodes: NodeState[] = [];
    for (const [id, spec] of this.#specs) {
      const record = this.#records.get(id)!;
      const probe = byId.get(id);
      const thresholds = { ...this.#thresholds, ...spec.thresholds };
      let verdict: Verdict;
      if (!probe) {
        verdict = { status: 'unhealthy', reason: 'unreachable', detail: 'not probed this round', immediate: false };
      } else if (!probe.ok) {
        record.consecutiveFailures += 1;
        record.lastCheckAt = probe.startedAt;
        verdict =
          probe.failure === 'fenced'
            ? { status: 'unhealthy', reason: 'fenced', detail: 'its databases refuse connections (fenced): rejoin it as a replica', immediate: true }
            : { status: 'unhealthy', reason: probe.failure === 'timeout' ? 'timeout' : 'unreachable', detail: `${probe.failure}: ${probe.error}`, immediate: false };
      } else {
        record.consecutiveFailures = 0;
        record.lastCheckAt = probe.startedAt;
        record.sample = probe.sample;
        record.role = probe.sample.inRecovery ? 'replica' : 'primary';
        verdict = this.#judge(spec, record, probe.sample, probe.startedAt, authority, primary, thresholds, now);
      }
      const before = record.health;
      record.health = applyVerdict(before, verdict, thresholds, now);
      const state = this.#toState(spec, record);
      nodes.push(state);
      if (record.health.status !== before.status || record.health.reason !== record.lastReason) {
        changes.push({ nodeId: id, from: before.status, to: record.health.status, reason: record.health.reason, detail: record.health.detail, node: state });
      }
      record.lastReason = record.health.reason;
    }
    return { nodes, changes, primarySample, reachable, writable };
  }

  #judge(
    spec: NodeSpec,
    record: NodeRecord,
    sample: NodeSample,
    sampledAt: Date,
    authority: Authority,
    primary: PrimaryView,
    t: HealthThresholds,
    now: Date,
  ): Verdict {
    if (authority.systemIdentifier && sample.systemIdentifier !== authority.systemIdentifier) {
      record.lagBytes = null;
      record.lagMs = null;
      return {
        status: 'unhealthy',
        reason: 'system-id-mismatch',
        detail: `system identifier ${sample.systemIdentifier}, cluster has ${authority.systemIdentifier}`,
        immediate: true,
      };
    }
    if (!sample.inRecovery) {
      record.lagBytes = 0;
      record.lagMs = 0;
      record.replica = newReplicaMemory();
      if (authority.primaryId !== null && authority.primaryId !== spec.id) {
        const stale = authority.formerPrimaryIds?.includes(spec.id) ?? false;
        return {
          status: 'unhealthy',
          reason: stale ? 'stale-primary' : 'second-primary',
          detail: stale
            ? `a former primary taking writes again; the primary of epoch ${authority.epoch} is ${authority.primaryId} (rejoin it as a replica)`
            : `not in recovery, but the primary of epoch ${authority.epoch} is ${authority.primaryId}`,
          immediate: true,
        };
      }
      // The epoch's primary with default_transaction_read_only on refuses every write (25006):
      // a fence a crashed switchover left behind, a switchover undone by hand, an operator's
      // ALTER SYSTEM. A switchover sets it on purpose while it drains, but only while it holds
      // the change lock: the lock is taken before the drain and released only after the drain
      // is undone (or the primary changed), and it expires CHANGE_LOCK_TTL_MS (5 s) after its
      // worker dies — so "read-only while no job holds the lock" is exactly the soft fence
      // nobody will lift. A time-based rule (read-only for longer than a switchover's pause)
      // would need a bound no setting gives (the pause is per job, the catch-up and hooks have
      // their own timeouts) and would hide a real outage for that long. The verdict still
      // needs `fall` rounds in a row, which also absorbs a sample taken just before a lock
      // release. Degraded, never unhealthy: routers and HAProxy keep sending writes to the
      // epoch's primary whatever its status short of unhealthy, and no failover follows.
      if (authority.primaryId === spec.id && sample.defaultReadOnly && authority.changeLockHeld !== true) {
        return {
          status: 'degraded',
          reason: 'read-only',
          detail: 'default_transaction_read_only is on while no job holds the change lock: every write fails with 25006 (ALTER SYSTEM RESET default_transaction_read_only; SELECT pg_reload_conf())',
          immediate: false,
        };
      }
      const replicas = [...this.#specs.keys()].filter((id) => id !== spec.id);
      const streaming = sample.standbys.filter((s) => s.state === 'streaming');
      if (replicas.length > 0 && streaming.length === 0) {
        return { status: 'degraded', reason: 'no-standby-streaming', detail: `none of ${replicas.length} replica(s) streams`, immediate: false };
      }
      return { status: 'healthy', reason: 'ok', immediate: false };
    }
    const judged = judgeReplica({ id: spec.id, sample, sampledAt, primary, memory: record.replica, heartbeat: this.#heartbeat, thresholds: t, now });
    record.lagBytes = judged.lagBytes;
    record.lagMs = judged.lagMs;
    return judged.verdict;
  }

  #toState(spec: NodeSpec, record: NodeRecord): NodeState {
    return {
      id: spec.id,
      host: spec.host,
      port: spec.port,
      role: record.role,
      status: record.health.status,
      reason: record.health.reason,
      priority: spec.priority,
      weight: spec.weight,
      ...(spec.zone !== undefined ? { zone: spec.zone } : {}),
      tags: [...spec.tags],
      lagBytes: record.lagBytes,
      lagMs: record.lagMs === null ? null : Math.round(record.lagMs),
      // For a primary, its current WAL position (the last one seen, once it is gone).
      replayLsn: (record.sample?.inRecovery === false ? record.sample.currentLsn : record.sample?.replayLsn) ?? null,
      receiveLsn: (record.sample?.inRecovery === false ? record.sample.currentLsn : record.sample?.receiveLsn) ?? null,
      timeline: record.sample?.timeline ?? null,
      lastCheckAt: record.lastCheckAt?.toISOString() ?? null,
      since: record.health.since.toISOString(),
      consecutiveFailures: record.consecutiveFailures,
    };
  }
}
