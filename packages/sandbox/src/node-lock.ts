import { linkSync, mkdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SandboxError } from './errors.js';
import { isAlive, startTimeOf } from './process-tree.js';

/** A takeover guard older than this belongs to a process that died while taking over a stale lock. */
const GUARD_STALE_MS = 10_000;

/**
 * Runs `fn` holding the sandbox's lock on one node, across processes: what a
 * service manager gives a host, where a unit's start, stop and the hooks that
 * call them are jobs run one at a time. The worker's stop and rejoin hooks take
 * it, and so does whatever starts a crashed node again (the chaos harness), so
 * that a start never lands between a rejoin's stop and its pg_rewind.
 *
 * The lock is a file under `<baseDir>/locks` naming its owner (pid and start
 * time, so a reused pid is not mistaken for it), put in place whole (written
 * aside, then hard-linked: never seen empty). A lock whose owner is gone is
 * taken over under a second, exclusive guard file, so two waiters never both
 * take it. Not reentrant. Waits at most `timeoutMs` (a rejoin that clones can
 * take minutes), then throws.
 */
export async function withNodeLock<T>(baseDir: string, nodeId: string, fn: () => Promise<T>, timeoutMs = 300_000): Promise<T> {
  const dir = join(baseDir, 'locks');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${nodeId}.lock`);
  const me = `${process.pid} ${startTimeOf(process.pid) ?? ''}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (tryCreate(file, me)) break;
    const owner = readOrEmpty(file);
    if (owner !== '' && !ownerAlive(owner)) {
      takeOverStale(file, owner);
      continue;
    }
    if (Date.now() > deadline) {
      throw new SandboxError('timeout', `node ${nodeId} is locked by pid ${owner.split(' ')[0]} (${file}) for more than ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  try {
    return await fn();
  } finally {
    if (readOrEmpty(file) === me) rmSync(file, { force: true });
  }
}

/** Whether the process a lock names (`<pid> <start time>`) still runs. */
function ownerAlive(owner: string): boolean {
  const [pid, started] = owner.split(' ');
  const n = Number(pid);
  if (!Number.isInteger(n) || n <= 0) return false;
  return isAlive(n) && (started === undefined || started === '' || startTimeOf(n) === started);
}

/** Creates the lock file with its content in one step (hard link of a file written aside); false when it exists. */
function tryCreate(file: string, content: string): boolean {
  const aside = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  writeFileSync(aside, content);
  try {
    linkSync(aside, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return false;
  } finally {
    unlinkSync(aside);
  }
}

/** Removes a dead owner's lock, once: under an exclusive guard, and only if it still names that owner. */
function takeOverStale(file: string, owner: string): void {
  const guard = `${file}.takeover`;
  if (!tryCreate(guard, String(process.pid))) {
    try {
      if (Date.now() - statSync(guard).mtimeMs > GUARD_STALE_MS) rmSync(guard, { force: true });
    } catch {
      // Removed meanwhile.
    }
    return;
  }
  try {
    if (readOrEmpty(file) === owner) rmSync(file, { force: true });
  } finally {
    rmSync(guard, { force: true });
  }
}

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}
