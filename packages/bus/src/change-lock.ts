import { BusKeyed } from './bus-keyed.js';
import { runScript } from './scripts.js';

/** A held change lock. */
export interface HeldLock {
  /** Fencing token: a number that grows with every grant. */
  readonly token: string;
  /** Extends the lock; false when it was lost (expired, taken by another holder). */
  extend(): Promise<boolean>;
  /** Releases the lock if still ours. */
  release(): Promise<void>;
}

/**
 * The cluster's change lock: at most one job changes the primary at a time.
 * Each grant carries a fencing token; the lock is renewed every third of its
 * TTL while held, so a short TTL frees it soon after a holder dies.
 */
export class ChangeLock extends BusKeyed {
  /** Takes the lock; null when another holder has it. */
  async acquire(ttlMs: number): Promise<HeldLock | null> {
    const token = String(await this.redis.incr(this.keys.fence));
    const ok = await this.redis.set(this.keys.changeLock, token, 'PX', ttlMs, 'NX');
    if (ok !== 'OK') return null;
    const extend = async () => (await runScript(this.redis, 'owner-extend', [this.keys.changeLock], [token, ttlMs])) === 1;
    const renew = setInterval(() => void extend().catch(() => {}), Math.max(500, ttlMs / 3));
    renew.unref();
    return {
      token,
      extend,
      release: async () => {
        clearInterval(renew);
        await runScript(this.redis, 'owner-release', [this.keys.changeLock], [token]);
      },
    };
  }
}
