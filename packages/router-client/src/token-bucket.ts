/**
 * A token bucket: `ratePerSec` tokens a second, at most `burst` saved up.
 * Caps the reads that fall back to the primary.
 */
export class TokenBucket {
  readonly #ratePerSec: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #updatedAt: number;

  constructor(ratePerSec: number, burst: number, now: () => number = () => performance.now()) {
    this.#ratePerSec = ratePerSec;
    this.#burst = burst;
    this.#now = now;
    this.#tokens = burst;
    this.#updatedAt = now();
  }

  #refill(): void {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#updatedAt) / 1000) * this.#ratePerSec);
    this.#updatedAt = now;
  }

  /** Takes one token if there is one. */
  tryTake(): boolean {
    if (!Number.isFinite(this.#ratePerSec)) return true;
    this.#refill();
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return true;
    }
    return false;
  }

  /**
   * Takes a token now or reserves the next free one if it comes within
   * `maxWaitMs`: returns how long to wait before using it, or `undefined`
   * (nothing taken) when the wait would be longer. Reservations queue, so
   * callers that wait together are served in turn rather than racing for
   * the one token that arrives.
   */
  reserve(maxWaitMs: number): number | undefined {
    if (!Number.isFinite(this.#ratePerSec)) return 0;
    this.#refill();
    const waitMs = this.#tokens >= 1 ? 0 : ((1 - this.#tokens) / this.#ratePerSec) * 1000;
    // A wait that is not a number (an unset option) allows none: fail closed, never queue without bound.
    if (!(waitMs <= maxWaitMs)) return undefined;
    this.#tokens -= 1;
    return waitMs;
  }
}
