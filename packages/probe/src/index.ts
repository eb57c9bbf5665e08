export { ClusterAssessor } from './cluster-assessor.js';
export type { Authority, NodeSpec, RoundAssessment, StatusChange } from './cluster-assessor.js';
export { applyVerdict, DEFAULT_HEALTH_THRESHOLDS, initialHealth, lagVerdict, worse } from './health.js';
export type { HealthThresholds, TrackedHealth, Verdict } from './health.js';
export { HEARTBEAT_HISTORY, HeartbeatTracker } from './heartbeat.js';
export { DEFAULT_PROBE_OPTIONS, isFencedError, NodeProber } from './node-prober.js';
export type { ProbeConnectionOptions, ProbeTarget } from './node-prober.js';
export { EPOCH_WRITE_QUERY, HEARTBEAT_WRITE_QUERY, PGREPLICA_SCHEMA_SQL, PGREPLICA_STATE_QUERY, TERM_WRITE_QUERY } from './queries.js';
export type {
  EpochRow,
  HeartbeatRow,
  NodeSample,
  ProbeFailure,
  ProbeResult,
  SlotInfo,
  StandbyInfo,
  WalReceiverInfo,
} from './types.js';
