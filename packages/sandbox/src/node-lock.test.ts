import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { withNodeLock } from './node-lock.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'node-lock-'));
  dirs.push(d);
  return d;
};

describe('withNodeLock', () => {
  it('runs the jobs on one node one at a time, and those on other nodes at once', async () => {
    const dir = tempDir();
    const log: string[] = [];
    const job = (name: string, ms: number) => async () => {
      log.push(`${name} in`);
      await new Promise((resolve) => setTimeout(resolve, ms));
      log.push(`${name} out`);
    };
    await Promise.all([withNodeLock(dir, 'p1', job('a', 300)), withNodeLock(dir, 'p1', job('b', 10)), withNodeLock(dir, 'r1', job('c', 10))]);
    // b waited for a; c (another node) did not.
    expect(log.indexOf('b in')).toBeGreaterThan(log.indexOf('a out'));
    expect(log.indexOf('c out')).toBeLessThan(log.indexOf('a out'));
  });

  it('releases the lock when the job throws', async () => {
    const dir = tempDir();
    await expect(withNodeLock(dir, 'p1', async () => Promise.reject(new Error('rewind failed')))).rejects.toThrow('rewind failed');
    await expect(withNodeLock(dir, 'p1', async () => 'next', 1_000)).resolves.toBe('next');
  });

  it('takes over a lock whose owner died or whose pid was reused, and times out on one whose owner lives', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'locks'));
    const dead = spawn('true');
    await new Promise((resolve) => dead.on('exit', resolve));
    writeFileSync(join(dir, 'locks', 'p1.lock'), String(dead.pid));
    await expect(withNodeLock(dir, 'p1', async () => readFileSync(join(dir, 'locks', 'p1.lock'), 'utf8'), 1_000)).resolves.toMatch(new RegExp(`^${process.pid} \\d+$`));

    // A live process whose start time is not the owner's: the owner's pid was reused.
    writeFileSync(join(dir, 'locks', 'r2.lock'), `${process.pid} 1`);
    await expect(withNodeLock(dir, 'r2', async () => 'taken over', 1_000)).resolves.toBe('taken over');

    const alive = spawn('sleep', ['30']);
    try {
      writeFileSync(join(dir, 'locks', 'r1.lock'), String(alive.pid));
      await expect(withNodeLock(dir, 'r1', async () => 'never', 300)).rejects.toThrow(/node r1 is locked by pid/);
    } finally {
      alive.kill('SIGKILL');
    }
  });
});
