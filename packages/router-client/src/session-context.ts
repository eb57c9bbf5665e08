import { AsyncLocalStorage } from 'node:async_hooks';
import type { Session } from './session.js';

const storage = new AsyncLocalStorage<Session>();

/**
 * Runs `fn` with `session` as the current session: every statement a
 * {@link RouterPool} runs inside it (and in whatever `fn` awaits or
 * schedules) honours the session's token and raises it — so an ORM built on
 * `router.asPool()` reads its own writes without passing the session
 * around. `pgreplicaMiddleware` runs each request this way.
 */
export function runWithSession<T>(session: Session, fn: () => T): T {
  return storage.run(session, fn);
}

/** The session of the {@link runWithSession} call this code runs in, if any. */
export function currentSession(): Session | undefined {
  return storage.getStore();
}
