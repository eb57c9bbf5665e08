#!/usr/bin/env node
// The local sandbox that `npm start` runs: a primary, 2 streaming replicas
// and Redis (from @pgreplica/sandbox), plus pgreplica-monitor and
// pgreplica-worker as their own processes (automatic failover on). Shows
// replication and the monitor's view until Ctrl-C, then stops the monitor
// and worker (SIGTERM) and every server.
import { spawn } from 'node:child_process';
import { openSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { formatStatus, freePort, startSandbox } from '@pgreplica/sandbox';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const say = (message) => process.stderr.write(`[local] ${message}\n`);

const { values } = parseArgs({
  options: { replicas: { type: 'string', default: '2' }, 'interval-ms': { type: 'string', default: '2000' }, help: { type: 'boolean', short: 'h' } },
});
if (values.help) {
  process.stdout.write('Usage: npm start -- [--replicas N] [--interval-ms MS]\n');
  process.exit(0);
}
const replicas = Number(values.replicas);
const intervalMs = Number(values['interval-ms']);
if (!Number.isInteger(replicas) || replicas < 0 || replicas > 8) {
  say('--replicas must be an integer from 0 to 8');
  process.exit(2);
}
if (!Number.isInteger(intervalMs) || intervalMs < 100) {
  say('--interval-ms must be an integer of at least 100');
  process.exit(2);
}

let sandbox;
let monitor;
let worker;
let stopping = false;
async function shutdown(signal) {
  if (stopping) {
    say('second signal: exiting now (the sandbox reaper removes what is left)');
    process.exit(1);
  }
  stopping = true;
  say(`${signal}: stopping`);
  await Promise.all(
    [worker, monitor].map(async (child) => {
      if (!child || child.exitCode !== null) return;
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

const started = Date.now();
sandbox = await startSandbox({ replicas, log: (m) => say(m) });
if (stopping) process.exit(0);
const httpPort = await freePort();
const workerPort = await freePort();
const hook = join(root, 'packages', 'sandbox', 'dist', 'hook.js');
const stateFile = sandbox.writeStateFile();
const configPath = join(sandbox.baseDir, 'monitor.json');
writeFileSync(
  configPath,
  JSON.stringify(
    {
      cluster: 'local',
      redis: { url: sandbox.redis.url },
      nodes: sandbox.nodes.map((n, i) => ({ id: n.id, host: n.host, port: n.port, priority: i })),
      database: { user: 'postgres' },
      monitor: { http: { host: '127.0.0.1', port: httpPort } },
      failover: { policy: 'auto', failoverAfterMs: 5000 },
      worker: {
        http: { host: '127.0.0.1', port: workerPort },
        hooks: { stop: `node ${hook} stop`, rejoin: `node ${hook} rejoin` },
      },
    },
    null,
    2,
  ),
);
const secrets = {
  PGREPLICA_DB_PASSWORD: sandbox.primary.connectionConfig.password,
  PGREPLICA_REPLICATION_PASSWORD: sandbox.replicationUser.password,
  PGREPLICA_SANDBOX_STATE: stateFile,
};
const spawnService = (name, main, instanceId) => {
  const log = join(sandbox.baseDir, 'logs', `${name}.log`);
  const child = spawn(process.execPath, [main, '--config', configPath], {
    env: { ...process.env, ...secrets, PGREPLICA_INSTANCE_ID: instanceId },
    stdio: ['ignore', openSync(log, 'a'), openSync(log, 'a')],
    detached: true, // our Ctrl-C handler stops it in order
  });
  child.on('exit', (code) => {
    if (!stopping) say(`${name} exited (${code}); see ${log}`);
  });
  return { child, log };
};
const m = spawnService('monitor', join(root, 'services', 'monitor', 'dist', 'main.js'), 'local-monitor');
const w = spawnService('worker', join(root, 'services', 'worker', 'dist', 'main.js'), 'local-worker');
monitor = m.child;
worker = w.child;
const monitorLog = m.log;

say(`up in ${((Date.now() - started) / 1000).toFixed(1)} s (PostgreSQL ${sandbox.binaries.pgMajor}); directory ${sandbox.baseDir}`);
process.stdout.write('\nConnection URLs (superuser; loopback only; deleted on exit):\n');
for (const node of sandbox.nodes) process.stdout.write(`  ${node.id.padEnd(5)} ${node.url}\n`);
process.stdout.write(`  redis ${sandbox.redis.url}  (bus cluster "local")\n`);
process.stdout.write(`  monitor http://127.0.0.1:${httpPort}/topology  /metrics  /health  (log: ${monitorLog})\n`);
process.stdout.write(`  worker  http://127.0.0.1:${workerPort}/health  /metrics  (log: ${w.log}); automatic failover is on\n`);
process.stdout.write(`  CLI     node packages/cli/dist/cli.js --config ${configPath} status   (env: PGREPLICA_DB_PASSWORD as above)\n`);
process.stdout.write('\nPress Ctrl-C to stop.\n\n');

async function monitorView() {
  try {
    const topology = await (await fetch(`http://127.0.0.1:${httpPort}/topology`)).json();
    if (!topology.nodes) return 'monitor: starting…';
    const lines = topology.nodes.map(
      (n) => `  ${n.id.padEnd(4)} ${n.role.padEnd(8)} ${n.status.padEnd(10)} ${n.reason.padEnd(20)} lag ${String(n.lagMs ?? '?').padStart(6)} ms ${String(n.lagBytes ?? '?').padStart(10)} B`,
    );
    return [`monitor (epoch ${topology.epoch}, primary ${topology.primaryId}):`, ...lines].join('\n');
  } catch {
    return 'monitor: not answering yet';
  }
}

const tty = process.stdout.isTTY;
let shown = 0;
while (!stopping) {
  const text = `${await formatStatus(sandbox)}\n\n${await monitorView()}`;
  if (stopping) break;
  if (tty) {
    process.stdout.write(`${shown > 0 ? `\x1b[${shown}F\x1b[J` : ''}${text}\n`);
    shown = text.split('\n').length;
  } else {
    process.stdout.write(`${new Date().toISOString()}\n${text}\n\n`);
  }
  await new Promise((resolve) => setTimeout(resolve, intervalMs));
}
