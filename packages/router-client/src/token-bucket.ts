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

  /** Milliseconds until a token is available. */
  msUntilNext(): number {
    if (!Number.isFinite(this.#ratePerSec)) return 0;
    this.#refill();
    return this.#tokens >= 1 ? 0 : ((1 - this.#tokens) / this.#ratePerSec) * 1000;
  }
}
