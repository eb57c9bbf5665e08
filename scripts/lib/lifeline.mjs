// Ties a process's life to the processes that started it: `npm start` runs
// npm → sh → start.mjs → local-cluster.mjs; whichever of them is killed
// (even with -9, which cannot be caught), the ones below notice within a
// second and shut down. Linux: ancestry is read from /proc.
import { readFileSync } from 'node:fs';

function parentOf(pid) {
  try {
    // The command name is in parentheses and may contain spaces: read after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return 0;
  }
}

function commandOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    return '';
  }
}

/**
 * The ancestors worth watching: from the parent up to (not including) the
 * interactive shell or init — npm, the `sh -c` it runs, node scripts.
 */
export function startingAncestors(pid = process.pid) {
  const chain = [];
  for (let p = parentOf(pid); p > 1 && chain.length < 8; p = parentOf(p)) {
    const command = commandOf(p);
    if (!/\b(npm|npx|node|sh -c)\b/.test(command)) break;
    chain.push({ pid: p, command });
  }
  return chain;
}

/** Calls `onDeath(ancestor)` once, when any of `ancestors` is gone (or became another program). Returns a stop function. */
export function watchAncestors(ancestors, onDeath, everyMs = 500) {
  let fired = false;
  const timer = setInterval(() => {
    for (const a of ancestors) {
      if (commandOf(a.pid) === a.command) continue;
      if (fired) return;
      fired = true;
      clearInterval(timer);
      onDeath(a);
      return;
    }
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
