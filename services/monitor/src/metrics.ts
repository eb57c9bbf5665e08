import { NODE_REASONS, NODE_ROLES, NODE_STATUSES, type NodeState } from '@pgreplica/protocol';
import type { SlotInfo } from '@pgreplica/probe';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The monitor's Prometheus metrics, in its own registry. */
export class MonitorMetrics {
  readonly registry = new Registry();
  readonly nodeUp = new Gauge({ name: 'pgreplica_node_up', help: 'Whether the node answered its last probe (1) or not (0).', labelNames: ['node'], registers: [this.registry] });
  readonly nodeRole = new Gauge({ name: 'pgreplica_node_role', help: 'Role of the node: 1 on the series of its current role.', labelNames: ['node', 'role'], registers: [this.registry] });
  readonly nodeStatus = new Gauge({ name: 'pgreplica_node_status', help: 'Health of the node: 1 on the series of its current status.', labelNames: ['node', 'status'], registers: [this.registry] });
  readonly nodeReason = new Gauge({
    name: 'pgreplica_node_reason',
    help: 'Why the node has its status (ok, lagging, read-only…): 1 on the series of its current reason.',
    labelNames: ['node', 'reason'],
    registers: [this.registry],
  });
  readonly lagBytes = new Gauge({ name: 'pgreplica_node_lag_bytes', help: 'Replay lag behind the primary, in bytes of WAL.', labelNames: ['node'], registers: [this.registry] });
  readonly lagSeconds = new Gauge({ name: 'pgreplica_node_lag_seconds', help: 'Replay lag behind the primary, in seconds (heartbeat).', labelNames: ['node'], registers: [this.registry] });
  readonly probeDuration = new Histogram({
    name: 'pgreplica_probe_duration_seconds',
    help: 'Duration of one probe of one node.',
    labelNames: ['node', 'outcome'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly slotRetainedBytes = new Gauge({ name: 'pgreplica_slot_retained_bytes', help: 'WAL held back on the primary by the slot, in bytes.', labelNames: ['slot'], registers: [this.registry] });
  readonly slotActive = new Gauge({ name: 'pgreplica_slot_active', help: 'Whether the slot has a consumer connected.', labelNames: ['slot'], registers: [this.registry] });
  readonly eventsPublished = new Counter({ name: 'pgreplica_events_published_total', help: 'Bus events published, by type.', labelNames: ['type'], registers: [this.registry] });
  readonly publishFailures = new Counter({ name: 'pgreplica_publish_failures_total', help: 'Bus publications that failed (Redis unreachable, lease lost).', labelNames: ['cause'], registers: [this.registry] });
  readonly leader = new Gauge({ name: 'pgreplica_monitor_leader', help: 'Whether this monitor instance holds the lease (publishes and enqueues).', registers: [this.registry] });
  readonly term = new Gauge({ name: 'pgreplica_monitor_term', help: 'Leadership term of this instance (0 when not leader).', registers: [this.registry] });
  readonly epoch = new Gauge({ name: 'pgreplica_epoch', help: 'Primary epoch as known to this monitor.', registers: [this.registry] });
  readonly jobsEnqueued = new Counter({ name: 'pgreplica_jobs_enqueued_total', help: 'Remediation jobs enqueued, by job name.', labelNames: ['job'], registers: [this.registry] });
  readonly failoversSuppressed = new Counter({ name: 'pgreplica_failovers_suppressed_total', help: 'Failovers not started, by reason.', labelNames: ['reason'], registers: [this.registry] });
  readonly authorityRejected = new Counter({
    name: 'pgreplica_authority_rejected_total',
    help: 'Reads of the primary record, pause flag or term on the bus that found a value not trusted (malformed, unsigned, signed with another key, an implausible term), by key and reason.',
    labelNames: ['key', 'reason'],
    registers: [this.registry],
  });
  readonly rounds = new Counter({ name: 'pgreplica_probe_rounds_total', help: 'Assessment rounds completed.', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /** Updates the per-node gauges from a round's states. */
  observeNodes(nodes: readonly NodeState[], reachable: ReadonlySet<string>): void {
    for (const node of nodes) {
      this.nodeUp.set({ node: node.id }, reachable.has(node.id) ? 1 : 0);
      for (const role of NODE_ROLES) this.nodeRole.set({ node: node.id, role }, node.role === role ? 1 : 0);
      for (const status of NODE_STATUSES) this.nodeStatus.set({ node: node.id, status }, node.status === status ? 1 : 0);
      for (const reason of NODE_REASONS) this.nodeReason.set({ node: node.id, reason }, node.reason === reason ? 1 : 0);
      if (node.lagBytes !== null) this.lagBytes.set({ node: node.id }, node.lagBytes);
      if (node.lagMs !== null) this.lagSeconds.set({ node: node.id }, node.lagMs / 1000);
    }
  }

  /** Updates the slot gauges; slots that disappeared lose their series. */
  observeSlots(slots: readonly SlotInfo[]): void {
    this.slotRetainedBytes.reset();
    this.slotActive.reset();
    for (const slot of slots) {
      if (slot.retainedBytes !== null) this.slotRetainedBytes.set({ slot: slot.slotName }, slot.retainedBytes);
      this.slotActive.set({ slot: slot.slotName }, slot.active ? 1 : 0);
    }
  }
}
