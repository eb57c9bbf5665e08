import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readManifest } from '@pgreplica/sandbox';
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

  const start = async (replicas = 1) => {
    const home = mkdtempSync(join(tmpdir(), 'pgreplica-start-'));
    const localDir = join(home, '.pgreplica');
    const npm = spawn('npm', ['start', '--', '--replicas', String(replicas), '--interval-ms', '500'], {
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

  it('a switchover, then a kill -9 of the new primary: each time the old primary streams again as a replica, in status and in the live view', async () => {
    const run = await start(2);
    type Status = { topology: { epoch: number; primaryId: string; nodes: { id: string; role: string; status: string; reason: string }[] } };
    const status = async (): Promise<Status['topology'] | null> => {
      const r = await cli(['status', '--json'], {}, undefined, run.home);
      return r.code === 0 ? (JSON.parse(r.out) as Status).topology : null;
    };
    /** Whether `primaryId` leads `epoch` and every other node is a healthy replica. */
    const settled = (t: Status['topology'] | null, epoch: number, primaryId: string) =>
      t?.epoch === epoch && t.primaryId === primaryId && t.nodes.length === 3 && t.nodes.every((n) => (n.id === primaryId ? n.role === 'primary' : n.role === 'replica' && n.status === 'healthy'));
    /** The last table npm start printed, and its row for `id`. */
    const liveRow = (id: string) => {
      const text = run.text();
      const last = text.slice(text.lastIndexOf('replication, as the nodes report it:'));
      return last.split('\n').find((l) => l.startsWith(`${id} `)) ?? '';
    };
    await eventually(async () => settled(await status(), 1, 'p1'), 60_000, 'three healthy nodes');

    const switchover = await cli(['switchover', '--to', 'r1', '--wait'], {}, undefined, run.home);
    expect(switchover.code, switchover.err).toBe(0);
    await eventually(async () => settled(await status(), 2, 'r1'), 60_000, 'r1 primary, p1 a healthy replica again');
    await eventually(() => /streaming from r1/.test(liveRow('p1')), 30_000, `p1 streaming from r1 in the live view:\n${run.text().slice(-3_000)}`);

    // What the start screen tells a user to try: kill -9 of the primary's postmaster.
    const dataDir = readManifest(run.baseDir)?.postgres.find((n) => n.id === 'r1')?.dataDir;
    expect(dataDir).toBeDefined();
    process.kill(Number(readFileSync(join(dataDir!, 'postmaster.pid'), 'utf8').split('\n')[0]), 'SIGKILL');
    let primaryId = '';
    await eventually(
      async () => {
        const t = await status();
        primaryId = t?.primaryId ?? '';
        return primaryId !== 'r1' && settled(t, 3, primaryId);
      },
      120_000,
      'a failover, and r1 restarted, fenced and rejoined as a healthy replica',
    );
    await eventually(() => new RegExp(`streaming from ${primaryId}`).test(liveRow('r1')), 30_000, `r1 streaming from ${primaryId} in the live view:\n${run.text().slice(-3_000)}`);
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
