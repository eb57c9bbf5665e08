import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isAlive, processTree, type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { describe, expect, it, onTestFinished } from 'vitest';
import { eventually } from './helpers.js';

/** Spawns a fixture that starts a sandbox and prints a JSON line; resolves with it. The owner is killed when the test ends. */
async function startOwner<T>(fixture: string, args: string[] = []): Promise<{ owner: ReturnType<typeof spawn>; info: T }> {
  const owner = spawn(process.execPath, [fileURLToPath(new URL(`./fixtures/${fixture}`, import.meta.url)), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  // Whatever happens below, the owner does not outlive the test (its reaper then cleans up).
  onTestFinished(() => {
    owner.kill('SIGKILL');
  });
  let output = '';
  owner.stdout!.setEncoding('utf8');
  const info = await new Promise<T>((resolve, reject) => {
    owner.stdout!.on('data', (chunk: string) => {
      output += chunk;
      const line = output.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve(JSON.parse(line) as T);
    });
    owner.on('exit', (code) => reject(new Error(`owner exited early (${code}): ${output}`)));
  });
  return { owner, info };
}

/** Every server pid of a sandbox: each postmaster with all its children, and Redis. */
function serverPids(sandbox: Sandbox): number[] {
  const pids = sandbox.nodes.flatMap((n) => (n.pid === undefined ? [] : processTree(n.pid)));
  if (sandbox.redis?.pid !== undefined) pids.push(sandbox.redis.pid);
  return pids;
}

describe('sandbox teardown', () => {
  it('stop() leaves no process and no directory, and is idempotent', async () => {
    const sandbox = await startSandbox({ replicas: 1 });
    const pids = serverPids(sandbox);
    expect(pids.length).toBeGreaterThan(4);
    await Promise.all([sandbox.stop(), sandbox.stop()]);
    await sandbox.stop();
    expect(pids.filter(isAlive)).toEqual([]);
    expect(existsSync(sandbox.baseDir)).toBe(false);
    await eventually(() => !isAlive(sandbox.reaperPid!), 5_000, 'reaper exit');
  });

  it('stops everything when the block using it throws (await using)', async () => {
    let pids: number[] = [];
    let baseDir = '';
    const failing = async () => {
      await using sandbox = await startSandbox({ replicas: 1, redis: false });
      pids = serverPids(sandbox);
      baseDir = sandbox.baseDir;
      // A paused node must not block the teardown.
      sandbox.replicas[0]!.pause();
      throw new Error('assertion failed inside the test');
    };
    await expect(failing()).rejects.toThrow('assertion failed inside the test');
    expect(pids.length).toBeGreaterThan(0);
    expect(pids.filter(isAlive)).toEqual([]);
    expect(existsSync(baseDir)).toBe(false);
  });

  it('a killed owner process leaves no server behind (the reaper cleans up)', async () => {
    const { owner, info } = await startOwner<{ baseDir: string; pids: number[]; servers: number[]; reaper: number }>('owner.mjs');
    expect(info.pids.length).toBeGreaterThan(4);
    // Postmasters and Redis run (a backend in the tree may come and go on its own).
    expect(info.servers).toHaveLength(3);
    expect(info.servers.every(isAlive)).toBe(true);

    owner.kill('SIGKILL');

    await eventually(() => info.pids.every((pid) => !isAlive(pid)) && !existsSync(info.baseDir), 20_000, 'reaper cleanup');
    await eventually(() => !isAlive(info.reaper), 5_000, 'reaper exit');
  });

  it.each(['sentinel', 'cluster'] as const)('a killed owner of a Redis %s leaves no Redis behind, one restarted since the start included', async (kind) => {
    const { owner, info } = await startOwner<{ baseDir: string; pids: number[]; redis: number[]; reaper: number }>('owner-redis.mjs', [kind]);
    // Sentinel: a master, a replica, three sentinels; Cluster: three primaries and their replicas.
    expect(info.redis).toHaveLength(kind === 'sentinel' ? 5 : 6);
    expect(info.redis.every(isAlive)).toBe(true);

    owner.kill('SIGKILL');

    await eventually(() => info.pids.every((pid) => !isAlive(pid)) && !existsSync(info.baseDir), 20_000, 'reaper cleanup');
    await eventually(() => !isAlive(info.reaper), 5_000, 'reaper exit');
  });
});
