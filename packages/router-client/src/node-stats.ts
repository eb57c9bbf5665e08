/** Weight of a new latency sample in the moving average. */
export const LATENCY_EWMA_ALPHA = 0.2;
/** Half-life of the recent-error score. */
export const ERROR_HALF_LIFE_MS = 5_000;

/**
 * What this router has seen of one node: queries in flight, a latency moving
 * average, a decaying error score, and a local ban after connection failures
 * (exponential, jittered back-off, so a dead node is retried rarely and not
 * by every client at once).
 */
export class NodeStats {
  inFlight = 0;
  latencyEwmaMs: number | null = null;
  total = 0;
  failed = 0;
  bannedUntil = 0;
  consecutiveConnectionFailures = 0;
  lastError: string | null = null;
  /** Highest replay LSN this router saw on the node itself (read-your-writes checks). */
  observedReplayLsn: string | null = null;
  #errorScore = 0;
  #errorAt = 0;

  /** Records a finished query. */
  record(durationMs: number, ok: boolean, now: number): void {
    if (ok) {
      this.recordOk(durationMs);
      return;
    }
    this.total++;
    this.failed++;
    this.#observe(durationMs);
    this.addError(now);
  }

  /** Records a query that succeeded (no clock needed: only errors are timed). */
  recordOk(durationMs: number): void {
    this.total++;
    this.#observe(durationMs);
    this.consecutiveConnectionFailures = 0;
  }

  #observe(durationMs: number): void {
    this.latencyEwmaMs = this.latencyEwmaMs === null ? durationMs : this.latencyEwmaMs + LATENCY_EWMA_ALPHA * (durationMs - this.latencyEwmaMs);
  }

  addError(now: number): void {
    this.#errorScore = this.errorScore(now) + 1;
    this.#errorAt = now;
  }

  /** Recent errors, decayed by {@link ERROR_HALF_LIFE_MS}. */
  errorScore(now: number): number {
    if (this.#errorScore === 0) return 0;
    return this.#errorScore * 0.5 ** ((now - this.#errorAt) / ERROR_HALF_LIFE_MS);
  }

  /** Bans the node after a connection failure; returns the ban length. */
  ban(now: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
    this.consecutiveConnectionFailures++;
    const exp = Math.min(maxMs, baseMs * 2 ** (this.consecutiveConnectionFailures - 1));
    const ms = Math.round(exp / 2 + random() * (exp / 2));
    this.bannedUntil = now + ms;
    this.addError(now);
    return ms;
  }

  isBanned(now: number): boolean {
    return now < this.bannedUntil;
  }

  /** Share of successful queries (1 before any). */
  get successRate(): number {
    return this.total === 0 ? 1 : (this.total - this.failed) / this.total;
  }
}
