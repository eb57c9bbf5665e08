import { decideFailover, type FailoverDecision, observeWitnesses, SlotWatch, synchronousStandbyNames } from '@pgreplica/decisions';
import type { NodeSample, RoundAssessment } from '@pgreplica/probe';
import { type JobName, type JobPayloadMap, jobId, type PrimaryRecord } from '@pgreplica/protocol';
import type { Config } from '@pgreplica/runtime';

/** A job the monitor should enqueue. */
export interface PlannedJob<N extends JobName = JobName> {
  name: N;
  payload: JobPayloadMap[N];
  /**
   * Identity of the condition it answers (`promote.<cluster>.e<epoch>`…):
   * while a job of this id is pending or running, another is not added.
   */
  dedupeId: string;
}

/** What one round calls for. */
export interface RemediationPlan {
  jobs: PlannedJob[];
  /** A failover that would run but is suppressed; `announce` is true once per episode. */
  suppressed: (Extract<FailoverDecision, { action: 'suppress' }> & { announce: boolean }) | null;
}

/**
 * Decides, round by round, which remediation the leader monitor triggers:
 * slot cleanups (through a {@link SlotWatch}), fences of writable nodes that
 * are not the primary of the epoch, repoints of replicas that do not stream
 * from the primary while it answers, and promotion when the primary is dead
 * (by {@link decideFailover}). No I/O: the monitor enqueues and publishes.
 */
export class RemediationPlanner {
  readonly #config: Config;
  readonly #slotWatch = new SlotWatch();
  readonly #announced = new Set<string>();

  constructor(config: Config) {
    this.#config = config;
  }

  /**
   * With `failover.durability: synchronous`, a `sync-standbys` job when the
   * primary's `synchronous_standby_names` is not `ANY 1` of the configured
   * replicas (not `nofailover`) streaming from it now.
   */
  #syncJob(round: RoundAssessment, record: PrimaryRecord): PlannedJob | null {
    const sample = round.primarySample;
    if (this.#config.failover.durability !== 'synchronous' || !sample) return null;
    const streaming = new Set(sample.standbys.filter((s) => s.state === 'streaming').map((s) => s.applicationName));
    const members = this.#config.nodes.filter((n) => n.id !== record.primaryId && !n.tags.includes('nofailover') && streaming.has(n.slotName));
    const desired = synchronousStandbyNames(members.map((m) => m.slotName));
    if (sample.synchronousStandbyNames === desired) return null;
    const cluster = this.#config.cluster;
    return {
      name: 'sync-standbys',
      payload: { cluster, epoch: record.epoch, reason: `synchronous_standby_names is '${sample.synchronousStandbyNames}', streaming replicas make it '${desired}'` },
      dedupeId: jobId('sync-standbys', { cluster, epoch: record.epoch }),
    };
  }

  /** The plan for one round, given who is primary (`record`), the pause flag and each node's latest sample. */
  plan(round: RoundAssessment, record: PrimaryRecord | null, paused: boolean, sampleOf: (nodeId: string) => NodeSample | null, nowMs: number): RemediationPlan {
    const cluster = this.#config.cluster;
    const epoch = record?.epoch ?? 0;
    const jobs: PlannedJob[] = [];
    // Pause stops what is automatic and not needed for safety: slot cleanup, rejoin, failover.
    if (round.primarySample && !paused) {
      const slots = this.#config.slots;
      for (const slot of this.#slotWatch.evaluate(round.primarySample.slots, slots, nowMs)) {
        jobs.push({
          name: 'slot-cleanup',
          payload: {
            cluster,
            epoch,
            slotName: slot.slotName,
            inactiveSince: new Date(this.#slotWatch.inactiveSince(slot.slotName) ?? nowMs).toISOString(),
            dryRun: false,
            reason: `inactive for ${this.#slotWatch.inactiveForMs(slot.slotName, nowMs)} ms, retaining ${slot.retainedBytes} bytes`,
          },
          dedupeId: jobId('slot-cleanup', { cluster, epoch, slotName: slot.slotName }),
        });
      }
    }
    if (!record) return { jobs, suppressed: null };
    const primaryId = record.primaryId;
    const sync = this.#syncJob(round, record);
    if (sync) jobs.push(sync);
    // A writable node that is not the primary of the epoch (a returning old
    // primary, a replica promoted by hand): have the worker fence it.
    for (const node of round.nodes) {
      if (node.reason !== 'second-primary' && node.reason !== 'stale-primary') continue;
      jobs.push({
        name: 'fence',
        payload: { cluster, epoch, nodeId: node.id, reason: `writable, but the primary of epoch ${epoch} is ${primaryId}` },
        dedupeId: jobId('fence', { cluster, epoch, nodeId: node.id }),
      });
    }
    if (this.#config.worker.autoRejoin && !paused) {
      // A deposed primary (fenced, or writable with an older epoch) or a forked replica that answers again.
      for (const node of round.nodes) {
        if (node.id === primaryId || (node.reason !== 'fenced' && node.reason !== 'stale-primary' && node.reason !== 'timeline-fork')) continue;
        jobs.push({
          name: 'rejoin',
          payload: { cluster, epoch, nodeId: node.id, reason: `${node.reason}: ${primaryId} is the primary of epoch ${epoch}` },
          dedupeId: jobId('rejoin', { cluster, epoch, nodeId: node.id }),
        });
      }
    }
    if (!paused && round.primarySample) {
      // A replica that was away when a promotion or switchover repointed the others follows the
      // deposed primary: its WAL receiver stays down (the old primary is gone), or it streams from
      // the old primary now a standby (a cascade: the primary lists no standby under its slot name).
      const standbys = round.primarySample.standbys;
      for (const node of round.nodes) {
        if (node.id === primaryId) continue;
        const receiverDown = node.reason === 'wal-receiver-down' && node.status === 'unhealthy';
        const slotName = this.#config.nodes.find((n) => n.id === node.id)?.slotName;
        const sample = sampleOf(node.id);
        const fromPrimary = standbys.some((s) => s.state === 'streaming' && (s.slotName === slotName || s.applicationName === slotName));
        const elsewhere = sample?.inRecovery === true && sample.walReceiver?.status === 'streaming' && !fromPrimary;
        if (!receiverDown && !elsewhere) continue;
        jobs.push({ name: 'repoint', payload: { cluster, epoch, nodeId: node.id, primaryId }, dedupeId: jobId('repoint', { cluster, epoch, nodeId: node.id }) });
      }
    }
    const primary = round.nodes.find((n) => n.id === primaryId);
    const witnesses = observeWitnesses(
      round.nodes.filter((n) => n.id !== primaryId).map((n) => ({ nodeId: n.id, reachable: round.reachable.has(n.id), sample: sampleOf(n.id) })),
      {
        otherNodeAddresses: new Set(this.#config.nodes.filter((n) => n.id !== primaryId).map((n) => `${n.host}:${n.port}`)),
        witnessFreshMs: this.#config.failover.witnessFreshMs,
        silenceMarginMs: this.#config.monitor.probeIntervalMs,
        nowMs,
      },
    );
    const decision = decideFailover({ primary, witnesses, policy: this.#config.failover, paused, nowMs });
    if (decision.action === 'none') {
      if (primary?.status !== 'unhealthy') this.#announced.clear();
      return { jobs, suppressed: null };
    }
    if (decision.action === 'suppress') {
      const episode = `${epoch}:${decision.reason}`;
      const announce = !this.#announced.has(episode);
      this.#announced.add(episode);
      return { jobs, suppressed: { ...decision, announce } };
    }
    jobs.push({
      name: 'promote',
      payload: {
        cluster,
        epoch,
        failedPrimaryId: primaryId,
        automatic: true,
        dryRun: false,
        detectedAt: primary?.since ?? new Date(nowMs).toISOString(),
      },
      dedupeId: jobId('promote', { cluster, epoch }),
    });
    return { jobs, suppressed: null };
  }
}
