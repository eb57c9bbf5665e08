import type { RouterOptions } from './options.js';
import { type ConsistencyToken, type DecodedToken, decodeToken, laterToken } from './tokens.js';

/**
 * The router's own read-your-writes token: with `defaults.consistency:
 * 'read-your-writes'` the router is one process-wide session, so every write
 * raises this token and every read honours it. The option is read on each
 * call, as the router always has.
 */
export class ProcessToken {
  readonly #options: RouterOptions;
  #latest: DecodedToken | null = null;

  constructor(options: RouterOptions) {
    this.#options = options;
  }

  /** Whether the router is a process-wide session (`defaults.consistency: 'read-your-writes'`). */
  get enabled(): boolean {
    return (this.#options.defaults?.consistency ?? 'eventual') === 'read-your-writes';
  }

  /** Raises the token after a write, when enabled. */
  note(token: DecodedToken | null): void {
    if (token && this.enabled) this.#latest = laterToken(this.#latest, token);
  }

  /**
   * The token a read must honour: the later of the call's `after` and, when
   * enabled, the router's own.
   * @throws RouterError (`invalid-token`) when `after` is not a token.
   */
  forRead(after: ConsistencyToken | null | undefined): DecodedToken | null {
    const explicit = after ? decodeToken(after) : null;
    const processWide = this.enabled ? this.#latest : null;
    return laterToken(explicit, processWide);
  }
}
