import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Monitor } from '@pgreplica/monitor';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeError } from './adapter-harness.js';
import { cli, writeConfig } from './cli-fixture.js';
import { eventually } from './helpers.js';
import { BusRecorder, monitorEnv, startMonitor } from './monitor-fixture.js';
import { portMap } from './router-fixture.js';
import { clusterConfig, startWorker, workerEnv } from './worker-fixture.js';

const MAIN = fileURLToPath(new URL('../../examples/express-drizzle/dist/main.js', import.meta.url));
const BUS_KEY = 'example-app-test-bus-key-0123456789';
const TOKEN = 'x-pgreplica-token';

// The example app (Express + Drizzle over the router) as its own process,
// driven over HTTP while a replica is killed and a switchover runs.
describe('example app: Express + Drizzle over the router', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let worker: RemediationWorker;
  let bus: BusRecorder;
  let app: ChildProcess;
  let url: string;
  let stderr = '';

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    const config = clusterConfig(sandbox);
    monitor = await startMonitor(sandbox, { failover: config.failover, worker: config.worker }, BUS_KEY);
    worker = await startWorker(sandbox, {}, BUS_KEY);
    bus = await BusRecorder.start(sandbox.redis!.url, 'main', BUS_KEY);
    await eventually(() => bus.events.some((e) => e.type === 'node.status'), 20_000, 'the monitor publishing').catch(() => {});
    app = spawn(process.execPath, [MAIN], {
      env: {
        ...process.env,
        PGREPLICA_REDIS_URL: sandbox.redis!.url,
        PGREPLICA_CLUSTER: 'main',
        PGREPLICA_BUS_KEY: BUS_KEY,
        PGUSER: 'postgres',
        PGPASSWORD: monitorEnv(sandbox).PGREPLICA_DB_PASSWORD,
        PGDATABASE: 'postgres',
        PORT: '0',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    app.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    url = await new Promise<string>((resolve, reject) => {
      let out = '';
      app.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /listening on (http:\/\/\S+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      app.once('exit', (code) => reject(new Error(`the app exited (${code}): ${stderr}`)));
      setTimeout(() => reject(new Error(`the app did not start: ${stderr}`)), 30_000).unref();
    });
    await eventually(async () => {
      const health = (await (await fetch(`${url}/health/database`)).json()) as { nodes: { status: string }[] };
      return health.nodes.length === 3 && health.nodes.every((n) => n.status === 'healthy');
    }, 20_000, 'all healthy in /health/database');
  });
  afterAll(async () => {
    if (app && app.exitCode === null) app.kill('SIGKILL');
    await worker?.close();
    await monitor?.close();
    await bus?.close();
    await sandbox?.stop();
  });

  it('serves /health/database', async () => {
    const res = await fetch(`${url}/health/database`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { ok: boolean; write: { nodeId: string }; read: { nodeId: string } };
    expect(body).toMatchObject({ ok: true, write: { nodeId: 'p1' } });
    expect(['r1', 'r2']).toContain(body.read.nodeId);
  });

  it('fails no request and every client reads its writes while a replica is killed and a switchover runs', async () => {
    const ports = portMap(sandbox);
    const failures: string[] = [];
    const readBy = new Set<string | undefined>();
    let requests = 0;
    let running = true;
    const client = async () => {
      let token: string | null = null;
      while (running) {
        try {
          const created = await fetch(`${url}/items`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { [TOKEN]: token } : {}) }, body: JSON.stringify({ name: `n${requests}` }) });
          const item = (await created.json()) as { id: number; name: string };
          if (created.status !== 201) throw new Error(`POST ${created.status}: ${JSON.stringify(item)}`);
          token = created.headers.get(TOKEN) ?? token;
          if (!token) throw new Error('POST returned no token');
          const read = await fetch(`${url}/items/${item.id}`, { headers: { [TOKEN]: token } });
          const got = (await read.json()) as { id: number; name: string; servedBy: number };
          if (read.status !== 200 || got.name !== item.name) throw new Error(`GET after POST: ${read.status} ${JSON.stringify(got)}`);
          const list = await fetch(`${url}/items`);
          if (list.status !== 200) throw new Error(`GET /items ${list.status}`);
          readBy.add(ports.get(got.servedBy));
          requests += 3;
        } catch (err) {
          failures.push(describeError(err));
        }
      }
    };
    const clients = Array.from({ length: 3 }, client);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await sandbox.node('r1').kill();
    await bus.waitFor((e) => e.type === 'node.status' && e.nodeId === 'r1' && e.to === 'unhealthy', 20_000, 'r1 unhealthy');
    const configPath = writeConfig(sandbox.baseDir, 'cli-example.json', clusterConfig(sandbox));
    const result = await cli(['--config', configPath, 'switchover', '--to', 'r2', '--max-write-pause-ms', '10000', '--wait', '--json'], workerEnv(sandbox, BUS_KEY));
    expect(result.code, result.err).toBe(0);
    await eventually(async () => ((await (await fetch(`${url}/health/database`)).json()) as { write?: { nodeId: string } }).write?.nodeId === 'r2', 20_000, 'the app writing to r2');
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    running = false;
    await Promise.all(clients);
    process.stderr.write(`[example] ${requests} requests, ${failures.length} failed; reads served by ${[...readBy].join(', ')}\n`);
    expect(failures, `the app said:\n${stderr.slice(-4000)}`).toEqual([]);
    expect(requests).toBeGreaterThan(100);
    expect([...readBy].some((n) => n === 'r1' || n === 'r2')).toBe(true);
  });

  it('shuts down gracefully on SIGTERM: a request sent just before completes, then exit 0', async () => {
    const inFlight = fetch(`${url}/items`);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const exited = new Promise<number | null>((resolve) => app.once('exit', resolve));
    app.kill('SIGTERM');
    expect((await inFlight).status).toBe(200);
    expect(await exited).toBe(0);
    expect(stderr).toMatch(/SIGTERM: closing[\s\S]*closed/);
  });
});
