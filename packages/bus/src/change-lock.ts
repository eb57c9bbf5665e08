import { BusKeyed } from './bus-keyed.js';
import { runScript } from './scripts.js';

/** A held change lock. */
export interface HeldLock {
  /** The lock's value, `<fencing token>|<holder>`: the token grows with every grant; steps fenced by the lock present it. */
  readonly value: string;
  /** Extends the lock; false when it was lost (expired, taken by another holder). */
  extend(): Promise<boolean>;
  /** Releases the lock if still ours. */
  release(): Promise<void>;
}

/**
 * The cluster's change lock: at most one job changes the primary at a time.
 * Each grant carries a fencing token; the lock is renewed every third of its
 * TTL while held, so a short TTL frees it soon after a holder dies. The same
 * holder (a job BullMQ re-delivered after its worker died) takes it over at
 * once with a new token, so the stalled first run's fenced steps fail.
 */
export class ChangeLock extends BusKeyed {
  /** Takes the lock for `holder` (a job id, no "|"); null when another holder has it. */
  async acquire(holder: string, ttlMs: number): Promise<HeldLock | null> {
    const granted = await runScript(this.redis, 'lock-acquire', [this.keys.changeLock, this.keys.fence], [holder, ttlMs]);
    if (typeof granted !== 'string') return null;
    const value = granted;
    const extend = async () => (await runScript(this.redis, 'owner-extend', [this.keys.changeLock], [value, ttlMs])) === 1;
    const renew = setInterval(() => void extend().catch(() => {}), Math.max(200, ttlMs / 3));
    renew.unref();
    return {
      value,
      extend,
      release: async () => {
        clearInterval(renew);
        await runScript(this.redis, 'owner-release', [this.keys.changeLock], [value]);
      },
    };
  }

  /** The current holder's lock value, if any. */
  async holder(): Promise<string | null> {
    return this.redis.get(this.keys.changeLock);
  }
}
