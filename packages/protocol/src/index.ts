export { createEvent, encodeEvent, parseEvent } from './codec.js';
export type { EnvelopeInput, EventRejection, ParseEventOptions, ParseEventResult } from './codec.js';
export { ProtocolError } from './errors.js';
export type { ProtocolErrorCode } from './errors.js';
export { BUS_EVENT_TYPES, busEventSchema, isGap, isNewerPosition, PROTOCOL_VERSION } from './events.js';
export type { BusEvent, BusEventOf, BusEventPayload, BusEventType, EnvelopeFields, EventPosition } from './events.js';
export {
  fenceJobSchema,
  JOB_NAMES,
  JOB_SCHEMAS,
  jobId,
  promoteJobSchema,
  REMEDIATION_QUEUE,
  repointJobSchema,
  slotCleanupJobSchema,
  switchoverJobSchema,
  syncStandbysJobSchema,
  rejoinJobSchema,
} from './jobs.js';
export type { FenceJob, JobName, JobPayloadMap, PromoteJob, RejoinJob, RepointJob, SlotCleanupJob, SwitchoverJob, SyncStandbysJob } from './jobs.js';
export { assertClusterName, busKeys, CLUSTER_NAME_PATTERN, redisRetryDelayMs } from './keys.js';
export type { BusKeys } from './keys.js';
export { bigIntToLsn, compareLsn, isLsn, isoTimeSchema, LSN_PATTERN_SOURCE, lsnDiffBytes, lsnSchema, lsnToBigInt } from './lsn.js';
export {
  defaultSlotName,
  NODE_ID_PATTERN,
  SLOT_NAME_PATTERN,
  NODE_REASONS,
  NODE_ROLES,
  NODE_STATUSES,
  NODE_TAGS,
  nodeStateSchema,
  topologySchema,
} from './node.js';
export type { NodeReason, NodeRole, NodeState, NodeStatus, NodeTag, Topology } from './node.js';
export { canonicalJson, computeSignature, hasValidSignature, openValue, sealValue, signEvent } from './signing.js';
export type { Opened } from './signing.js';
export { checkRecordSignature, parsePrimaryRecord, pauseRecordSchema, primaryRecordSchema, readPauseRecord, readPrimaryRecord, signRecord } from './authority.js';
export type { AuthorityRejection, Checked, PauseRecord, PrimaryRecord } from './authority.js';
export { checkJobAuth, JOB_AUTH_TTL_MS, jobAuthSchema, signJob } from './job-auth.js';
export type { JobAuth, JobAuthRejection } from './job-auth.js';
