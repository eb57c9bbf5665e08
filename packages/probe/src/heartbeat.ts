/** How many written heartbeats are remembered to measure lag against. */
export const HEARTBEAT_HISTORY = 900;

/**
 * Measures replication lag in time from the heartbeats this monitor wrote on
 * the primary. Each heartbeat has a sequence number (≈ the monitor's clock in
 * ms, so it keeps growing across restarts) and the moment its commit was
 * acknowledged. A replica whose row shows sequence `s` is missing every
 * heartbeat after `s`; its lag is the age of the oldest one it misses — 0
 * when it has the newest, however idle the primary is. All times are this
 * process's clock, so clock skew between hosts does not enter.
 */
export class HeartbeatTracker {
  readonly #history: { seq: number; committedAtMs: number }[] = [];
  #lastSeq = 0;

  /** The sequence number for the next heartbeat write. */
  nextSeq(nowMs: number = Date.now()): number {
    this.#lastSeq = Math.max(this.#lastSeq + 1, Math.floor(nowMs));
    return this.#lastSeq;
  }

  /** Records that heartbeat `seq` committed on the primary at `committedAtMs`. */
  recordCommit(seq: number, committedAtMs: number): void {
    const last = this.#history.at(-1);
    if (last && seq <= last.seq) return;
    this.#history.push({ seq, committedAtMs });
    if (this.#history.length > HEARTBEAT_HISTORY) this.#history.splice(0, this.#history.length - HEARTBEAT_HISTORY);
  }

  /** Whether any heartbeat has been written by this process. */
  get started(): boolean {
    return this.#history.length > 0;
  }

  /**
   * Lag of a node whose heartbeat row showed `replicaSeq` when it was sampled
   * at `sampledAtMs`: the age, at that moment, of the oldest heartbeat it
   * missed among those committed before it — 0 when it had all of them.
   * Null when unknown (no row yet, or no heartbeat written by this process).
   * A replica still missing this process's first heartbeat gets the age of
   * that one: a lower bound, so a restarted monitor does not see every
   * replica lagging.
   */
  lagMs(replicaSeq: number | null, sampledAtMs: number): number | null {
    if (replicaSeq === null || this.#history.length === 0) return null;
    const missing = this.#history.find((h) => h.seq > replicaSeq);
    return missing && missing.committedAtMs < sampledAtMs ? sampledAtMs - missing.committedAtMs : 0;
  }
}
