import { SandboxError } from './errors.js';

/**
 * Calls `check` every 50 ms until it returns a value (a throw counts as not
 * yet) and resolves with it.
 * @throws SandboxError (`timeout`) naming `what` after `timeoutMs`, with the last error as cause
 */
export async function pollUntil<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new SandboxError('timeout', `${what} not within ${timeoutMs} ms`, { cause: last });
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
