/** One physical standby as its primary reports it (`pg_stat_replication`). */
export interface StandbyInfo {
  pid: number;
  applicationName: string;
  clientAddr: string | null;
  state: string;
  syncState: string;
  sentLsn: string | null;
  writeLsn: string | null;
  flushLsn: string | null;
  replayLsn: string | null;
  writeLagMs: number | null;
  flushLagMs: number | null;
  replayLagMs: number | null;
  /** `pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)` */
  replayLagBytes: number | null;
  /** Slot this standby streams through, when it uses one. */
  slotName: string | null;
}

/** One replication slot on a primary (`pg_replication_slots`). */
export interface SlotInfo {
  slotName: string;
  slotType: string;
  active: boolean;
  activePid: number | null;
  /** `reserved`, `extended`, `unreserved` or `lost` (PostgreSQL 13+). */
  walStatus: string | null;
  /** Bytes that can still be written before the slot is in danger of losing WAL; null when unlimited. */
  safeWalSizeBytes: number | null;
  /** WAL this slot holds back on the primary, in bytes. */
  retainedBytes: number | null;
}

/** State of a replica's WAL receiver (`pg_stat_wal_receiver`). */
export interface WalReceiverInfo {
  status: string;
  receivedTimeline: number | null;
  lastMsgReceiptAt: Date | null;
  senderHost: string | null;
  senderPort: number | null;
  slotName: string | null;
}

/** One row of pgreplica.epoch: who was made primary in which epoch. */
export interface EpochRow {
  epoch: number;
  primaryId: string;
  systemIdentifier: string;
  cause: string;
  previousPrimaryId: string | null;
  at: string;
  /** HMAC over the record with the bus key, when one is configured. */
  sig: string | null;
}

/** The monitor's heartbeat row as a node has it. */
export interface HeartbeatRow {
  seq: number;
  at: Date;
}

/** Everything one successful probe of a node measured. */
export interface NodeSample {
  inRecovery: boolean;
  /** `pg_control_system().system_identifier`, decimal (exceeds 2^53). */
  systemIdentifier: string;
  timeline: number | null;
  /** Primary only. */
  currentLsn: string | null;
  /** Replica only. */
  receiveLsn: string | null;
  /** Replica only. */
  replayLsn: string | null;
  replayPaused: boolean;
  lastReplayAt: Date | null;
  serverNow: Date;
  walReceiver: WalReceiverInfo | null;
  /** Null when the heartbeat table or this monitor's row does not exist (yet) on this node. */
  heartbeat: HeartbeatRow | null;
  /** The node's latest epoch record (pgreplica.epoch); null when there is none or it cannot be read. */
  epoch: EpochRow | null;
  /** The term floor kept in the node; null when there is none. */
  termFloor: number | null;
  /** Why pgreplica's tables could not be read (a missing grant, a recovery conflict); null when they could or do not exist. */
  stateError: string | null;
  /** `wal_receiver_timeout` in ms (0: disabled): how long a replica's receiver can be silent on an idle primary is half of it. */
  walReceiverTimeoutMs: number | null;
  /** `synchronous_standby_names` as set on the node ('' when none). */
  synchronousStandbyNames: string;
  /**
   * `default_transaction_read_only` as the probe's session sees it (the
   * server's setting: the probe sets no role or database default of its own).
   * On a primary it makes every router write fail with 25006.
   */
  defaultReadOnly: boolean;
  /** Primary only (empty on replicas). */
  standbys: StandbyInfo[];
  /** Primary only (empty on replicas). */
  slots: SlotInfo[];
}

/** Why a probe failed. */
export type ProbeFailure = 'unreachable' | 'timeout' | 'auth' | 'fenced' | 'error';

/** Outcome of probing one node once. */
export type ProbeResult =
  | { ok: true; nodeId: string; startedAt: Date; durationMs: number; sample: NodeSample }
  | { ok: false; nodeId: string; startedAt: Date; durationMs: number; failure: ProbeFailure; error: string };
