import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { cli } from './cli-fixture.js';
import { eventually } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Pids whose command line contains `needle`. */
function pidsWith(needle: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .flatMap((d) => {
      try {
        return readFileSync(`/proc/${d}/cmdline`, 'utf8').replaceAll('\0', ' ').includes(needle) ? [Number(d)] : [];
      } catch {
        return [];
      }
    })
    .filter((pid) => pid !== process.pid);
}

/** The process group of a pid (its 5th /proc stat field). */
function groupOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  } catch {
    return -1;
  }
}

function output(child: ChildProcess): () => string {
  let text = '';
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  return () => text;
}

// `npm start` as a user runs it: the sandbox, monitor and worker come up,
// `pgreplica status` finds them with no flags, and whichever of its three
// processes is killed with -9, everything it started is gone within 10 s.
describe('npm start', () => {
  const cleanups: (() => void)[] = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0)) cleanup();
  });

  const start = async () => {
    const home = mkdtempSync(join(tmpdir(), 'pgreplica-start-'));
    const localDir = join(home, '.pgreplica');
    const npm = spawn('npm', ['start', '--', '--replicas', '1', '--interval-ms', '500'], {
      cwd: ROOT,
      env: { ...process.env, PGREPLICA_LOCAL_DIR: localDir, CI: 'true' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const text = output(npm);
    cleanups.push(() => {
      try {
        process.kill(-npm.pid!, 'SIGKILL');
      } catch {
        // gone
      }
      rmSync(home, { recursive: true, force: true });
    });
    await eventually(() => text().includes('Press Ctrl-C to stop.'), 120_000, `npm start up; output so far:\n${text()}`);
    const local = JSON.parse(readFileSync(join(localDir, 'local.json'), 'utf8')) as { config: string };
    return { npm, home, text, baseDir: dirname(local.config), config: local.config };
  };

  it('prints the commands to paste; pgreplica status finds the sandbox with no flags', async () => {
    const run = await start();
    expect(run.text()).toContain('npx pgreplica status');
    expect(run.text()).toContain('npx pgreplica switchover --to r1');
    await eventually(async () => (await cli(['status'], {}, undefined, run.home)).code === 0, 30_000, 'status answers');
    const status = await cli(['status', '--json'], {}, undefined, run.home);
    const nodes = (JSON.parse(status.out) as { topology: { nodes: { id: string; role: string }[] } }).topology.nodes;
    expect(nodes.map((n) => [n.id, n.role])).toEqual([
      ['p1', 'primary'],
      ['r1', 'replica'],
    ]);
    // The example app runs against the sandbox: a write, then the same request's read sees it.
    const url = /example app (http:\/\/127\.0\.0\.1:\d+)\/items/.exec(run.text())?.[1];
    expect(url).toBeDefined();
    await eventually(async () => (await fetch(`${url}/health/database`).catch(() => null))?.status === 200, 30_000, 'example app healthy');
    const created = await fetch(`${url}/items`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'from npm start' }) });
    expect(created.status).toBe(201);
    // Outside any checkout and without a config, the CLI says how to give one.
    const nowhere = await cli(['status'], {}, undefined, tmpdir());
    expect(nowhere.code).toBe(2);
    expect(nowhere.err).toContain('run `npm start` in this checkout');
  });

  for (const victim of ['npm', 'scripts/start.mjs', 'scripts/local-cluster.mjs'] as const) {
    it(`leaves nothing running within 10 s when ${victim} is killed with -9`, async () => {
      const run = await start();
      await eventually(() => pidsWith(run.config).length >= 3, 30_000, 'monitor, worker and example app running');
      const before = pidsWith(run.baseDir);
      expect(before.length).toBeGreaterThan(4);
      // This run's own processes: npm leads their process group.
      const pid = victim === 'npm' ? run.npm.pid! : pidsWith(victim).find((p) => groupOf(p) === run.npm.pid);
      expect(pid).toBeDefined();
      process.kill(pid!, 'SIGKILL');
      await eventually(() => pidsWith(run.baseDir).length === 0 && !existsSync(run.baseDir), 10_000, `everything stopped after ${victim} was killed`);
    });
  }
});
