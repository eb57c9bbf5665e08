/**
 * The sandbox reaper: a detached process that holds the read end of a pipe
 * from the sandbox's owner. When the owner exits for any reason — a normal
 * exit, a crash, SIGKILL — the pipe closes and the reaper stops every server
 * the manifest lists and deletes the directory. No server outlives its owner.
 *
 * Usage (internal): node reaper.js <baseDir>
 */
import { destroySandbox } from './manifest.js';

const baseDir = process.argv[2];
if (!baseDir) {
  process.stderr.write('usage: reaper.js <baseDir>\n');
  process.exit(2);
}

let done = false;
async function reap(): Promise<void> {
  if (done) return;
  done = true;
  try {
    await destroySandbox(baseDir!);
    process.exit(0);
  } catch (err) {
    process.stderr.write(`pgreplica sandbox reaper: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

// Ignore terminal signals: the reaper must outlive a Ctrl-C of its owner long enough to clean up.
process.on('SIGINT', () => {});
process.on('SIGHUP', () => {});
process.stdin.on('data', () => {});
process.stdin.on('end', () => void reap());
process.stdin.on('close', () => void reap());
process.stdin.on('error', () => void reap());
process.stdin.resume();
