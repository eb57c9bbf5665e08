export { ClusterAssessor } from './cluster-assessor.js';
export type { Authority, NodeSpec, RoundAssessment, StatusChange } from './cluster-assessor.js';
export { applyVerdict, DEFAULT_HEALTH_THRESHOLDS, initialHealth, lagVerdict, worse } from './health.js';
export type { HealthThresholds, TrackedHealth, Verdict } from './health.js';
export { HEARTBEAT_HISTORY, HeartbeatTracker } from './heartbeat.js';
export { DEFAULT_PROBE_OPTIONS, NodeProber } from './node-prober.js';
export type { ProbeConnectionOptions, ProbeTarget } from './node-prober.js';
export { HEARTBEAT_READ_QUERY, HEARTBEAT_SCHEMA_SQL, HEARTBEAT_WRITE_QUERY } from './queries.js';
export type {
  HeartbeatRow,
  NodeSample,
  ProbeFailure,
  ProbeResult,
  SlotInfo,
  StandbyInfo,
  WalReceiverInfo,
} from './types.js';
