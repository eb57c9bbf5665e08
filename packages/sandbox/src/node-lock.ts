import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SandboxError } from './errors.js';
import { isAlive } from './process-tree.js';

/**
 * Runs `fn` holding the sandbox's lock on one node, across processes: what a
 * service manager gives a host, where a unit's start, stop and the hooks that
 * call them are jobs run one at a time. The worker's stop and rejoin hooks take
 * it, and so does whatever starts a crashed node again (the chaos harness), so
 * that a start never lands between a rejoin's stop and its pg_rewind.
 *
 * The lock is a file created exclusively under `<baseDir>/locks`, holding the
 * owner's pid; a lock whose owner died is taken over. Waits at most
 * `timeoutMs` (a rejoin that clones can take minutes), then throws.
 */
export async function withNodeLock<T>(baseDir: string, nodeId: string, fn: () => Promise<T>, timeoutMs = 300_000): Promise<T> {
  const dir = join(baseDir, 'locks');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${nodeId}.lock`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number(readFileSafe(file));
    // Unreadable or half-written: the owner is between its create and its write; wait.
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && !isAlive(owner)) {
      rmSync(file, { force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new SandboxError('command-failed', `node ${nodeId} is locked by pid ${owner} (${file}) for more than ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  try {
    return await fn();
  } finally {
    if (readFileSafe(file) === String(process.pid)) rmSync(file, { force: true });
  }
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}
