#!/usr/bin/env node
/**
 * `npm run example`: the example app against a local sandbox — the
 * servers, monitor and worker of `scripts/local-cluster.mjs` (run as it
 * is, its output in a log file) — printing the app's URL. Ctrl-C stops the
 * app gracefully, then the sandbox.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ExampleServer, startServer } from './server.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const STARTUP_TIMEOUT_MS = 180_000;
const say = (message: string) => process.stderr.write(`[example] ${message}\n`);

const dir = mkdtempSync(join(tmpdir(), 'pgreplica-example-'));
const log = join(dir, 'local-cluster.log');
const localFile = join(dir, 'local.json');
let cluster: ChildProcess | undefined;
let server: ExampleServer | undefined;
let stopping = false;

async function stop(reason: string, code: number): Promise<never> {
  if (stopping) {
    say(`${reason} again: exiting now (the sandbox's reaper removes what is left)`);
    process.exit(1);
  }
  stopping = true;
  say(`${reason}: stopping the app, then the sandbox`);
  await server?.close(5_000).catch((err: Error) => say(`app close: ${err.message}`));
  if (cluster && cluster.exitCode === null) {
    const exited = new Promise((resolve) => cluster!.once('exit', resolve));
    cluster.kill('SIGINT');
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 30_000))]);
  }
  rmSync(dir, { recursive: true, force: true });
  say('stopped');
  process.exit(code);
}
process.on('SIGINT', () => void stop('SIGINT', 0));
process.on('SIGTERM', () => void stop('SIGTERM', 0));

say(`starting a primary, 2 replicas, Redis, the monitor and the worker (log: ${log})`);
// Its own process group: Ctrl-C reaches this process only, which stops the app first.
cluster = spawn(process.execPath, [join(ROOT, 'scripts/local-cluster.mjs'), '--interval-ms', '5000'], {
  cwd: ROOT,
  env: { ...process.env, PGREPLICA_LOCAL_DIR: dir },
  stdio: ['ignore', openSync(log, 'a'), openSync(log, 'a')],
  detached: true,
});
cluster.on('exit', (code) => {
  if (!stopping) void stop(`the sandbox exited (${code}; see ${log})`, 1);
});

const deadline = Date.now() + STARTUP_TIMEOUT_MS;
while (!existsSync(localFile)) {
  if (Date.now() > deadline) await stop(`the sandbox did not come up in ${STARTUP_TIMEOUT_MS / 1000} s (see ${log})`, 1);
  await new Promise((resolve) => setTimeout(resolve, 200));
}
const local = JSON.parse(readFileSync(localFile, 'utf8')) as { config: string; env: Record<string, string> };
const config = JSON.parse(readFileSync(local.config, 'utf8')) as { cluster: string; redis: { url: string } };

try {
  server = await startServer({
    port: Number(process.env.PORT ?? 0),
    router: {
      cluster: config.cluster,
      redis: config.redis.url,
      connection: { user: 'postgres', password: local.env.PGREPLICA_DB_PASSWORD, database: 'postgres', applicationName: 'pgreplica-example' },
    },
    log: say,
  });
} catch (err) {
  await stop(`the app did not start: ${(err as Error).message}`, 1);
}
const url = server!.url;
process.stdout.write(`
pgreplica example (Express + Drizzle over the router) on ${url}

  curl -si -X POST ${url}/items -H 'content-type: application/json' -d '{"name":"book"}'
  curl -si ${url}/items/1 -H 'x-pgreplica-token: <the token the POST returned>'
  curl -s ${url}/health/database

Sandbox log: ${log}. Press Ctrl-C to stop.
`);
