import { compareLsn, lsnDiffBytes } from '@pgreplica/protocol';
import { type HealthThresholds, lagVerdict, type Verdict, worse } from './health.js';
import type { HeartbeatTracker } from './heartbeat.js';
import type { NodeSample } from './types.js';

/** What the assessor remembers of a replica between rounds. */
export interface ReplicaMemory {
  /** The previous successful sample. */
  previous: NodeSample | null;
  /** Since when its WAL receiver has not been streaming (while the primary was up). */
  receiverDownSince: Date | null;
  /** Since when replay has not moved while received WAL was waiting. */
  replayStuckSince: Date | null;
  /** Its time lag when the primary was last seen. */
  lagAtPrimaryLossMs: number | null;
  /**
   * When its lag was last measured against a live primary (ms): while no
   * primary can be sampled — the old one dead, the new one not yet seen
   * as a primary — its staleness grows from there.
   */
  lagMeasuredAtMs: number | null;
}

/** The primary as this round saw it. */
export interface PrimaryView {
  /** Its sample this round; null when it did not answer as a primary. */
  sample: NodeSample | null;
  /** Its id, for standby matching. */
  id: string | null;
  /** When it last answered as a primary (null: never, as far as this assessor knows). */
  lastSeenAt: Date | null;
}

/** The replica's verdict and measured lag for this round. */
export interface ReplicaJudgement {
  verdict: Verdict;
  lagMs: number | null;
  lagBytes: number | null;
}

/**
 * Judges one replica from its sample, with the primary's sample of the same
 * round. Pure apart from updating `memory`.
 *
 * - Lag in bytes: primary's current LSN minus the replica's replay LSN.
 * - Lag in time: from the heartbeats, measured at the replica's own sample
 *   time (only heartbeats committed before it count), so a replica that has
 *   replayed everything reads 0 and one a few ms behind reads a few ms — not
 *   the time between its probe and the round. Without heartbeats: the
 *   primary's view (`replay_lag`), matched by slot or application name.
 * - A replica whose primary is unreachable is `stale`, not unhealthy: it
 *   keeps serving what it replayed, and its lag grows with the time since
 *   the primary was last seen (a partitioned primary may be taking writes).
 * - A receiver down for `receiverDownAfterMs` while the primary is up is unhealthy.
 * - Replay stalled: received WAL waiting and replay not moving for
 *   `replayStalledAfterMs` — a window, never one pair of samples.
 */
export function judgeReplica(args: {
  id: string;
  sample: NodeSample;
  sampledAt: Date;
  primary: PrimaryView;
  memory: ReplicaMemory;
  heartbeat: HeartbeatTracker | null;
  thresholds: HealthThresholds;
  now: Date;
}): ReplicaJudgement {
  const { id, sample, sampledAt, primary, memory, thresholds: t, now } = args;
  const previous = memory.previous;
  memory.previous = sample;
  const lagBytes = primary.sample?.currentLsn && sample.replayLsn ? Math.max(0, lsnDiffBytes(primary.sample.currentLsn, sample.replayLsn)) : null;
  const measuredLagMs = timeLagMs(args.heartbeat, id, sample, sampledAt, primary.sample);

  if (sample.replayPaused) {
    return { verdict: { status: 'unhealthy', reason: 'replay-paused', detail: 'pg_wal_replay_pause() in effect', immediate: true }, lagMs: measuredLagMs, lagBytes };
  }

  if (primary.sample === null && primary.id !== null) {
    // The primary is gone (or cut off from this observer): a stale replica.
    memory.receiverDownSince = null;
    memory.replayStuckSince = null;
    memory.lagAtPrimaryLossMs ??= measuredLagMs ?? 0;
    // The primary of the epoch was never seen as one (just promoted, not yet
    // sampled as a primary): from when this replica's lag was last measured.
    const seenAtMs = primary.lastSeenAt?.getTime() ?? memory.lagMeasuredAtMs;
    const sinceMs = seenAtMs === null ? null : now.getTime() - seenAtMs;
    const lagMs = sinceMs === null ? null : memory.lagAtPrimaryLossMs + sinceMs;
    const detail = `primary ${primary.id} unreachable${sinceMs === null ? '' : ` for ${sinceMs} ms`}; serving what it replayed`;
    return { verdict: { status: 'degraded', reason: 'stale', detail, immediate: false }, lagMs, lagBytes };
  }
  memory.lagAtPrimaryLossMs = null;
  if (measuredLagMs !== null) memory.lagMeasuredAtMs = sampledAt.getTime();

  let verdict = lagVerdict(measuredLagMs, lagBytes, t);
  const receiver = sample.walReceiver;
  if (receiver?.status === 'streaming') {
    memory.receiverDownSince = null;
  } else {
    memory.receiverDownSince ??= now;
    const downMs = now.getTime() - memory.receiverDownSince.getTime();
    verdict = worse(verdict, {
      status: downMs >= t.receiverDownAfterMs ? 'unhealthy' : 'degraded',
      reason: 'wal-receiver-down',
      detail: `WAL receiver ${receiver ? receiver.status : 'not running'} for ${downMs} ms`,
      immediate: downMs >= t.receiverDownAfterMs,
    });
  }

  const primaryTimeline = primary.sample?.timeline;
  if (primaryTimeline != null && sample.timeline != null && sample.timeline !== primaryTimeline) {
    if (sample.timeline > primaryTimeline || receiver?.status !== 'streaming') {
      verdict = worse(verdict, { status: 'unhealthy', reason: 'timeline-fork', detail: `on timeline ${sample.timeline}, primary on ${primaryTimeline}`, immediate: false });
    }
  }

  const waiting = sample.receiveLsn !== null && sample.replayLsn !== null && compareLsn(sample.replayLsn, sample.receiveLsn) < 0;
  const moved = previous?.replayLsn == null || sample.replayLsn === null || compareLsn(sample.replayLsn, previous.replayLsn) !== 0;
  if (!waiting || moved) memory.replayStuckSince = null;
  else memory.replayStuckSince ??= sampledAt;
  const stuckMs = memory.replayStuckSince ? now.getTime() - memory.replayStuckSince.getTime() : 0;
  if (memory.replayStuckSince && stuckMs >= t.replayStalledAfterMs) {
    const detail = `replay stuck at ${sample.replayLsn} for ${stuckMs} ms with WAL received up to ${sample.receiveLsn}`;
    // Stalled and lagging past a limit: keep the harsher status, name the cause.
    verdict =
      verdict.status === 'healthy'
        ? { status: 'degraded', reason: 'replay-stalled', detail, immediate: true }
        : verdict.reason === 'lagging'
          ? { ...verdict, reason: 'replay-stalled', detail }
          : verdict;
  }
  return { verdict, lagMs: measuredLagMs, lagBytes };
}

/** Time lag of a replica at its own sample time; null when unknown. */
function timeLagMs(heartbeat: HeartbeatTracker | null, id: string, sample: NodeSample, sampledAt: Date, primary: NodeSample | null): number | null {
  if (heartbeat?.started) {
    const lag = heartbeat.lagMs(sample.heartbeat?.seq ?? null, sampledAt.getTime());
    if (lag !== null) return lag;
  }
  // No heartbeat (no write rights, or none written yet): the primary's view.
  const slot = sample.walReceiver?.slotName ?? null;
  const standby = primary?.standbys.find((s) => s.applicationName === id || (slot !== null && s.slotName === slot));
  if (standby) return standby.replayLagMs ?? 0;
  // Replayed everything the primary had: caught up.
  if (primary?.currentLsn && sample.replayLsn && compareLsn(sample.replayLsn, primary.currentLsn) >= 0) return 0;
  return null;
}

/** A fresh memory for a replica. */
export function newReplicaMemory(): ReplicaMemory {
  return { previous: null, receiverDownSince: null, replayStuckSince: null, lagAtPrimaryLossMs: null, lagMeasuredAtMs: null };
}
