#!/usr/bin/env node
// Installs what `npm start`, `npm test` and `npm run bench` need and is
// missing: npm packages (npm ci), the PostgreSQL server, redis-server and
// openssl (from Debian's packages, as root) and, for `npm test`, `npm run
// bench` and CI, the tools that check the operator files in deploy/ (haproxy,
// promtool from the prometheus package, systemd-analyze). Uses only Node's
// standard library, because it runs before any dependency is installed.
// Idempotent and quick when nothing is missing.
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const say = (message) => process.stderr.write(`[bootstrap] ${message}\n`);

function run(command, args, options = {}) {
  say(`$ ${command} ${args.join(' ')}`);
  const result = spawnSync(command, args, { stdio: 'inherit', cwd: root, ...options });
  if (result.status !== 0) {
    say(`${command} failed (exit ${result.status ?? result.signal})`);
    process.exit(1);
  }
}

function executable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(program) {
  return (process.env.PATH ?? '').split(':').some((dir) => dir && executable(join(dir, program)));
}

function hasPostgresServer() {
  const dirs = [];
  if (process.env.PG_BINDIR) dirs.push(process.env.PG_BINDIR);
  try {
    dirs.push(execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  } catch {
    // optional
  }
  if (existsSync('/usr/lib/postgresql')) {
    for (const version of readdirSync('/usr/lib/postgresql')) dirs.push(`/usr/lib/postgresql/${version}/bin`);
  }
  return dirs.some((dir) => ['initdb', 'pg_ctl', 'postgres', 'pg_basebackup', 'pgbench'].every((p) => executable(join(dir, p))));
}

// --- Node.js ---
const major = Number(process.versions.node.split('.')[0]);
if (major < 20) {
  say(`Node.js ${process.versions.node} is too old: pgreplica needs Node.js 20 or newer`);
  process.exit(1);
}

// --- system packages ---
const missing = [];
if (!hasPostgresServer()) missing.push('postgresql');
if (!onPath('redis-server') && !executable('/usr/bin/redis-server')) missing.push('redis-server');
// The sandbox's throw-away CA and certificates (tls: true) are made with openssl.
if (!onPath('openssl') && !executable('/usr/bin/openssl')) missing.push('openssl');
// The deploy checks (test/src/haproxy.test.ts, deploy-files.test.ts, the HAProxy
// benchmark) run the real tools; `npm start` does not need them.
const DEPLOY_TOOLS = { haproxy: 'haproxy', promtool: 'prometheus', 'systemd-analyze': 'systemd' };
// biome-ignore lint/suspicious/noUndeclaredEnvVars: npm sets it for its lifecycle scripts; not a task input
const forDeployChecks = process.env.npm_lifecycle_event !== 'prestart';
const missingTools = forDeployChecks ? Object.entries(DEPLOY_TOOLS).filter(([program]) => !onPath(program) && !executable(`/usr/sbin/${program}`)) : [];
const missingToolPackages = missingTools.map(([, pkg]) => pkg);
missing.push(...missingToolPackages);
if (missing.length > 0) {
  if (process.getuid?.() !== 0) {
    say(`missing: ${missing.join(', ')}. Install them as root: apt-get update && apt-get install -y ${missing.join(' ')}`);
    process.exit(1);
  }
  if (!onPath('apt-get')) {
    say(
      `missing: ${missing.join(', ')}, and this is not a Debian-like system: install the PostgreSQL server (13+), redis-server, haproxy, promtool and systemd-analyze, or set PG_BINDIR / REDIS_SERVER`,
    );
    process.exit(1);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // Only the programs are wanted: keep the haproxy and prometheus daemons from
  // starting during the install (policy-rc.d), and from starting at boot.
  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = missingToolPackages.length > 0 && !existsSync(policy);
  if (ownPolicy) writeFileSync(policy, '#!/bin/sh\n# pgreplica bootstrap: no service starts while it installs tools\nexit 101\n', { mode: 0o755 });
  try {
    run('apt-get', ['update', '-qq'], { env });
    run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env });
  } finally {
    if (ownPolicy) rmSync(policy, { force: true });
  }
  const daemons = missingToolPackages.filter((pkg) => pkg === 'haproxy' || pkg === 'prometheus');
  if (daemons.length > 0 && existsSync('/run/systemd/system')) spawnSync('systemctl', ['disable', '--quiet', ...daemons], { stdio: 'inherit' });
}

// --- npm packages ---
const lock = join(root, 'package-lock.json');
const installed = join(root, 'node_modules', '.package-lock.json');
const stale = !existsSync(installed) || (existsSync(lock) && statSync(lock).mtimeMs > statSync(installed).mtimeMs);
if (stale) {
  run('npm', existsSync(lock) ? ['ci', '--no-audit', '--no-fund'] : ['install', '--no-audit', '--no-fund']);
}
