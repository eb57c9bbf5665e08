import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { busKeys } from '@pgreplica/protocol';
import { freePort, type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, removeScratch, scratchDir } from './helpers.js';
import { BusRecorder, monitorConfig, monitorEnv } from './monitor-fixture.js';

const MAIN = fileURLToPath(new URL('../../services/monitor/dist/main.js', import.meta.url));
const LEASE_TTL_MS = 2_000;
const INTERVAL_MS = 250;

interface Proc {
  id: string;
  child: ChildProcess;
  httpPort: number;
  output: string;
  exit: Promise<number | null>;
}

function runMonitor(configPath: string, env: NodeJS.ProcessEnv, id: string, httpPort: number): Proc {
  const child = spawn(process.execPath, [MAIN, '--config', configPath], {
    env: { ...process.env, ...env, PGREPLICA_INSTANCE_ID: id, PGREPLICA_HTTP_PORT: String(httpPort), LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc: Proc = { id, child, httpPort, output: '', exit: new Promise((resolve) => child.on('exit', (code) => resolve(code))) };
  child.stdout!.on('data', (d: Buffer) => (proc.output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (proc.output += d.toString()));
  return proc;
}

async function health(proc: Proc): Promise<{ leader: boolean; term: number } | null> {
  try {
    return (await (await fetch(`http://127.0.0.1:${proc.httpPort}/health`)).json()) as { leader: boolean; term: number };
  } catch {
    return null;
  }
}

describe('pgreplica-monitor as a process', () => {
  let sandbox: Sandbox;
  let scratch: string;
  let bus: BusRecorder;
  let redis: Redis;
  const procs: Proc[] = [];

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 1 });
    scratch = scratchDir();
    bus = await BusRecorder.start(sandbox.redis!.url);
    redis = new Redis(sandbox.redis!.url);
  });
  afterAll(async () => {
    for (const p of procs) p.child.kill('SIGKILL');
    await redis?.quit();
    await bus?.close();
    await sandbox?.stop();
    removeScratch(scratch);
  });

  const start = async (id: string, path: string) => {
    const proc = runMonitor(path, monitorEnv(sandbox), id, await freePort());
    procs.push(proc);
    return proc;
  };

  it('refuses a bad config with exit code 2 and a message naming each field', async () => {
    const path = join(scratch, 'bad.yaml');
    const config = monitorConfig(sandbox) as { nodes: Record<string, unknown>[] };
    writeFileSync(
      path,
      JSON.stringify({ ...config, monitor: { probeIntervalMs: -1 }, colour: 'blue', nodes: [{ id: 'p1', host: '127.0.0.1' }, { id: 'p1', host: '127.0.0.1', port: 1 }] }),
    );
    const proc = await start('bad', path);
    expect(await proc.exit).toBe(2);
    expect(proc.output).toContain('unknown field(s) "colour"');
    expect(proc.output).toContain('nodes[0].port: each node needs a port');
    expect(proc.output).toContain('monitor.probeIntervalMs:');
    expect(proc.output).toContain('nodes[1].id: duplicate node id "p1"');
  });

  it('elects one publisher; killing it hands over within the lease TTL with a higher term; SIGTERM hands over at once', async () => {
    const path = join(scratch, 'monitor.yaml');
    writeFileSync(path, JSON.stringify(monitorConfig(sandbox, { monitor: { leader: { leaseTtlMs: LEASE_TTL_MS } } })));
    const a = await start('m-a', path);
    await eventually(async () => (await health(a))?.leader === true, 15_000, 'm-a leads');
    const b = await start('m-b', path);
    await eventually(async () => (await health(b)) !== null, 15_000, 'm-b up');
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect([(await health(a))?.leader, (await health(b))?.leader]).toEqual([true, false]);
    const firstTerm = (await health(a))!.term;
    expect(new Set(bus.events.map((e) => e.term))).toEqual(new Set([firstTerm]));

    // Kill -9: no release; the standby waits for the lease to expire.
    const since = bus.events.length;
    const killedAt = Date.now();
    a.child.kill('SIGKILL');
    const next = await bus.waitFor((e) => e.term > firstTerm, LEASE_TTL_MS + 10_000, 'event of a new term', since);
    expect(Date.parse(next.at) - killedAt).toBeLessThanOrEqual(LEASE_TTL_MS + 2 * INTERVAL_MS + 1_000);
    expect((await health(b))?.leader).toBe(true);

    // A graceful stop releases the lease: the next standby takes over well before the TTL.
    const c = await start('m-c', path);
    await eventually(async () => (await health(c)) !== null, 15_000, 'm-c up');
    const secondTerm = (await health(b))!.term;
    const since2 = bus.events.length;
    const stoppedAt = Date.now();
    b.child.kill('SIGTERM');
    expect(await b.exit).toBe(0);
    const third = await bus.waitFor((e) => e.term > secondTerm, 10_000, 'event of the third term', since2);
    expect(Date.parse(third.at) - stoppedAt).toBeLessThan(LEASE_TTL_MS);
    expect(b.output).toContain('monitor stopped');

    // Routers' (term, seq) order held across both hand-overs.
    expect(bus.outOfOrder).toEqual([]);
    expect(bus.rejected).toEqual([]);
    c.child.kill('SIGTERM');
    expect(await c.exit).toBe(0);
    expect(await redis.get(busKeys('main').leader)).toBeNull();
    for (const p of [a, b, c]) expect(p.output).not.toContain(sandbox.primary.connectionConfig.password as string);
  });
});
