#!/usr/bin/env node
// The local sandbox that `npm start` runs: a primary, 2 streaming replicas
// and Redis (from @pgreplica/sandbox), plus pgreplica-monitor and
// pgreplica-worker as their own processes (automatic failover and rejoin on).
// Shows replication and the monitor's view until Ctrl-C, then stops the
// monitor and worker (SIGTERM) and every server. Whatever kills it, nothing
// it started outlives it: the sandbox's reaper stops the servers and the
// services; if the process that started it dies, it stops by itself.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { findBinaries, formatStatus, freePort, startSandbox } from '@pgreplica/sandbox';
import { startingAncestors, watchAncestors } from './lib/lifeline.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const say = (message) => process.stderr.write(`[local] ${message}\n`);
const USAGE = 'Usage: npm start -- [--replicas N] [--interval-ms MS] [--no-example]';

let values;
try {
  ({ values } = parseArgs({ options: { replicas: { type: 'string', default: '2' }, 'interval-ms': { type: 'string', default: '2000' }, 'no-example': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true }));
} catch (err) {
  process.stderr.write(`npm start: ${err.message}\n${USAGE}\n`);
  process.exit(2);
}
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const replicas = Number(values.replicas);
const intervalMs = Number(values['interval-ms']);
if (!Number.isInteger(replicas) || replicas < 0 || replicas > 8) {
  process.stderr.write(`npm start: --replicas must be an integer from 0 to 8\n${USAGE}\n`);
  process.exit(2);
}
if (!Number.isInteger(intervalMs) || intervalMs < 100) {
  process.stderr.write(`npm start: --interval-ms must be an integer of at least 100\n${USAGE}\n`);
  process.exit(2);
}
// Every binary first, before any server starts.
try {
  findBinaries();
} catch (err) {
  process.stderr.write(`npm start: ${err.message}\n`);
  process.exit(1);
}

// Kept after exit (the sandbox directory is not): the logs a message points at, and how the CLI finds this
// sandbox (`.pgreplica/local.json` in this checkout; PGREPLICA_LOCAL_DIR moves it, for tests).
const localDir = process.env.PGREPLICA_LOCAL_DIR || join(root, '.pgreplica');
const logDir = join(localDir, 'logs');
const localFile = join(localDir, 'local.json');
mkdirSync(logDir, { recursive: true, mode: 0o700 });

let sandbox;
const services = [];
let stopping = false;
async function shutdown(signal) {
  if (stopping) {
    say('second signal: exiting now (the sandbox reaper removes what is left)');
    process.exit(1);
  }
  stopping = true;
  say(`${signal}: stopping`);
  rmSync(localFile, { force: true });
  await Promise.all(
    services.map(async (child) => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 22_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }),
  );
  await sandbox?.stop().catch((err) => say(`sandbox stop: ${err.message}`));
  say('stopped; nothing left running');
  process.exit(0);
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
watchAncestors(startingAncestors(), (gone) => void shutdown(`${gone.command} (pid ${gone.pid}) is gone`));

const started = Date.now();
sandbox = await startSandbox({ replicas, log: (m) => say(m) });
if (stopping) process.exit(0);
const httpPort = await freePort();
const workerPort = await freePort();
const hook = join(root, 'packages', 'sandbox', 'dist', 'hook.js');
const stateFile = sandbox.writeStateFile();
const configPath = join(sandbox.baseDir, 'pgreplica.json');
writeFileSync(
  configPath,
  JSON.stringify(
    {
      cluster: 'local',
      redis: { url: sandbox.redis.url },
      nodes: sandbox.nodes.map((n) => ({ id: n.id, host: n.host, port: n.port })),
      database: { user: 'postgres' },
      failover: { policy: 'auto' },
      monitor: { http: { host: '127.0.0.1', port: httpPort } },
      worker: {
        http: { host: '127.0.0.1', port: workerPort },
        hooks: { stop: `node ${hook} stop`, rejoin: `node ${hook} rejoin`, passEnv: ['PGREPLICA_SANDBOX_STATE'] },
        autoRejoin: true,
      },
    },
    null,
    2,
  ),
  { mode: 0o600 },
);
const secrets = {
  PGREPLICA_DB_PASSWORD: sandbox.primary.connectionConfig.password,
  PGREPLICA_SANDBOX_STATE: stateFile,
};
const spawnService = (name, main, instanceId, extraEnv = {}) => {
  const log = join(logDir, `${name}.log`);
  const child = spawn(process.execPath, [main, '--config', configPath], {
    env: { ...process.env, ...secrets, PGREPLICA_INSTANCE_ID: instanceId, ...extraEnv },
    stdio: ['ignore', openSync(log, 'w'), openSync(log, 'a')],
    detached: true, // our Ctrl-C handler stops it in order
  });
  // If this process is killed, the sandbox's reaper kills the service with the servers.
  sandbox.adoptProcess(name, child.pid, configPath);
  child.on('exit', (code) => {
    if (!stopping) say(`${name} exited (${code}); see ${log}`);
  });
  services.push(child);
  return log;
};
const monitorLog = spawnService('monitor', join(root, 'services', 'monitor', 'dist', 'main.js'), 'local-monitor');
const workerLog = spawnService('worker', join(root, 'services', 'worker', 'dist', 'main.js'), 'local-worker');
// The example app (examples/express-drizzle): Express + Drizzle on the router, against this sandbox.
const examplePort = values['no-example'] ? null : await freePort();
const exampleLog =
  examplePort === null
    ? null
    : spawnService('example', join(root, 'examples', 'express-drizzle', 'dist', 'main.js'), 'local-example', {
        PGREPLICA_REDIS_URL: sandbox.redis.url,
        PGREPLICA_CLUSTER: 'local',
        PGUSER: 'postgres',
        PGPASSWORD: sandbox.primary.connectionConfig.password,
        PGDATABASE: 'postgres',
        PORT: String(examplePort),
      });
// `npx pgreplica …` with no flags finds this sandbox through this file (while this process runs).
writeFileSync(localFile, JSON.stringify({ config: configPath, env: secrets, pid: process.pid }), { mode: 0o600 });

say(`up in ${((Date.now() - started) / 1000).toFixed(1)} s (PostgreSQL ${sandbox.binaries.pgMajor}); directory ${sandbox.baseDir}`);
const out = (line = '') => process.stdout.write(`${line}\n`);
out('\nConnection URLs (superuser; loopback only; deleted on exit):');
for (const node of sandbox.nodes) out(`  ${node.id.padEnd(5)} ${node.url}`);
out(`  redis ${sandbox.redis.url}  (bus cluster "local")`);
out(`  monitor http://127.0.0.1:${httpPort}/topology  /metrics  /health   log ${monitorLog}`);
out(`  worker  http://127.0.0.1:${workerPort}/health  /metrics   log ${workerLog}`);
if (examplePort !== null) out(`  example app http://127.0.0.1:${examplePort}/items  /health/database   log ${exampleLog}  (examples/express-drizzle)`);
out('\nAutomatic failover and rejoin are on. In another terminal, in this checkout:');
out('  npx pgreplica status                       # nodes, roles, lag, epoch');
out('  npx pgreplica watch                        # live bus events');
out('  npx pgreplica events --since 10m           # what happened');
out(`  npx pgreplica switchover --to ${sandbox.replicas[0]?.id ?? 'r1'} --wait       # planned change of primary, no write lost`);
out(`  kill -9 $(head -1 ${join(sandbox.primary.dataDir, 'postmaster.pid')})   # a dead primary: watch the failover; it restarts and rejoins as a replica`);
out('\nPress Ctrl-C to stop.\n');

async function monitorView() {
  try {
    const topology = await (await fetch(`http://127.0.0.1:${httpPort}/topology`)).json();
    if (!topology.nodes) return { text: 'monitor: starting…', shape: 'starting', primaryId: null };
    const rows = topology.nodes.map((n) => {
      const role = n.id === topology.primaryId ? 'primary' : n.reason === 'fenced' ? 'fenced' : n.role === 'primary' ? 'stale primary' : n.role;
      return { n, role };
    });
    const lines = rows.map(
      ({ n, role }) =>
        `  ${n.id.padEnd(6)} ${role.padEnd(13)} ${n.status.padEnd(10)} ${n.reason.padEnd(20)} lag ${String(n.lagMs ?? '?').padStart(6)} ms ${String(n.lagBytes ?? '?').padStart(10)} B`,
    );
    const text = [`monitor's view: epoch ${topology.epoch}, primary ${topology.primaryId}`, `  ${'NODE'.padEnd(6)} ${'ROLE'.padEnd(13)} ${'STATUS'.padEnd(10)} REASON`, ...lines].join('\n');
    const shape = `${topology.epoch}/${topology.primaryId}/${rows.map(({ n, role }) => `${n.id}:${role}:${n.status}:${n.reason}`).join(',')}`;
    return { text, shape, primaryId: topology.primaryId };
  } catch {
    return { text: 'monitor: not answering yet', shape: 'down', primaryId: null };
  }
}

// A PostgreSQL that crashed — its postmaster.pid left behind, no postmaster
// running (kill -9) — is started again, as a service manager would on a
// server: a replica comes back and streams; the epoch's primary is left down
// for a minute so that the failover replaces it, and once deposed it comes
// back, is fenced and rejoins as a replica (worker.autoRejoin). A node stopped
// cleanly (a switchover's stop hook, a rewind in progress) removed its pid file
// and is left alone.
const PRIMARY_RESTART_AFTER_MS = 60_000;
const crashedSince = new Map();
const restarting = new Set();
function restartCrashed(primaryId) {
  for (const node of sandbox.nodes) {
    const pidFile = join(node.dataDir, 'postmaster.pid');
    if (restarting.has(node.id) || node.running || !existsSync(pidFile)) {
      crashedSince.delete(node.id);
      continue;
    }
    // A negative pid is a single-user postgres (pg_rewind's recovery run in a rejoin hook): busy, not crashed.
    let pid = 0;
    try {
      pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    } catch {
      continue;
    }
    if (!(pid > 0)) continue;
    const since = crashedSince.get(node.id) ?? Date.now();
    crashedSince.set(node.id, since);
    // Its backends exit within moments of the postmaster; give them 3 s.
    if (Date.now() - since < (node.id === primaryId ? PRIMARY_RESTART_AFTER_MS : 3_000)) continue;
    restarting.add(node.id);
    say(`${node.id} crashed: starting it again (as a service manager would)`);
    // The pid file is stale (its postmaster is gone), but a dead postmaster nobody
    // reaped yet still passes PostgreSQL's own check and would block the start.
    rmSync(pidFile, { force: true });
    node
      .start()
      .catch((err) => say(`${node.id} did not start: ${err.message.split('\n')[0]}`))
      .finally(() => restarting.delete(node.id));
  }
}

// On a terminal, redraw in place; through a pipe or into a log, print only when something changed.
const tty = process.stdout.isTTY;
let shown = 0;
let lastShape = '';
while (!stopping) {
  const view = await monitorView();
  restartCrashed(view.primaryId);
  const replication = await formatStatus(sandbox, { primaryId: view.primaryId });
  if (stopping) break;
  const text = `replication, as the nodes report it:\n${replication}\n\n${view.text}`;
  if (tty) {
    process.stdout.write(`${shown > 0 ? `\x1b[${shown}F\x1b[J` : ''}${text}\n`);
    shown = text.split('\n').length;
  } else {
    const shape = `${view.shape}|${replication.replace(/\d+\/[0-9A-F]+|\d+ B/g, '')}`;
    if (shape !== lastShape) process.stdout.write(`${new Date().toISOString()}\n${text}\n\n`);
    lastShape = shape;
  }
  await new Promise((resolve) => setTimeout(resolve, intervalMs));
}
