import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { commandLine, isAlive, signalTree, waitForExit } from './process-tree.js';

/** Prefix of every sandbox directory; cleanup refuses to delete anything else. */
export const SANDBOX_DIR_PREFIX = 'pgreplica-sandbox-';

/** What a sandbox started, written to `<baseDir>/manifest.json` so a reaper can stop it. */
export interface SandboxManifest {
  version: 1;
  baseDir: string;
  /** Process that owns the sandbox; when it dies, the reaper cleans up. */
  ownerPid: number;
  postgres: { id: string; dataDir: string }[];
  redis: { pid: number; port: number } | null;
  /** The redis-server processes of a Sentinel group or a Cluster (data servers and sentinels), by port; the pid of the latest start. */
  redisServers?: { pid: number; port: number }[];
  /**
   * Other processes that belong to the sandbox (the monitor and worker `npm
   * start` runs), each the leader of its own process group; `marker` is part
   * of its command line (against pid reuse).
   */
  processes?: { name: string; pid: number; marker: string }[];
}

/** Path of the manifest inside a sandbox directory. */
export function manifestPath(baseDir: string): string {
  return join(baseDir, 'manifest.json');
}

/** Writes the manifest atomically (rename), so a reaper never reads half of it. */
export function writeManifest(manifest: SandboxManifest): void {
  const path = manifestPath(manifest.baseDir);
  writeFileSync(`${path}.tmp`, JSON.stringify(manifest, null, 2), { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

/** Reads a manifest, or null when there is none. */
export function readManifest(baseDir: string): SandboxManifest | null {
  try {
    return JSON.parse(readFileSync(manifestPath(baseDir), 'utf8')) as SandboxManifest;
  } catch {
    return null;
  }
}

/**
 * Records the pid a redis-server of the sandbox runs as (after every start:
 * a restarted server has a new one), so the reaper stops it. `port` names it:
 * `single` is the sandbox's one server (`redis`), else one of `redisServers`.
 */
export function recordRedisPid(baseDir: string, port: number, pid: number, single = false): void {
  const manifest = readManifest(baseDir);
  if (!manifest) return;
  if (single) manifest.redis = { pid, port };
  else manifest.redisServers = [...(manifest.redisServers ?? []).filter((r) => r.port !== port), { pid, port }];
  writeManifest(manifest);
}

/** Pid of the postmaster of `dataDir` if one runs there (checked against its command line, against pid reuse). */
export function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (Number.isInteger(pid) && pid > 0 && isAlive(pid) && commandLine(pid).includes(dataDir)) return pid;
  } catch {
    // No pid file: not running.
  }
  return undefined;
}

/**
 * Hard-stops everything a manifest lists (SIGCONT then SIGKILL, whole process
 * trees) and deletes the sandbox directory. Used by the reaper when the owner
 * died, and by `stop()` for whatever a graceful stop left behind.
 */
export async function destroySandbox(baseDir: string): Promise<void> {
  if (!basename(baseDir).startsWith(SANDBOX_DIR_PREFIX)) {
    throw new Error(`refusing to destroy ${baseDir}: not a sandbox directory`);
  }
  const manifest = readManifest(baseDir);
  const killed: number[] = [];
  for (const node of manifest?.postgres ?? []) {
    const pid = postmasterPid(node.dataDir);
    if (pid === undefined) continue;
    signalTree(pid, 'SIGCONT');
    killed.push(...signalTree(pid, 'SIGKILL'));
  }
  for (const proc of manifest?.processes ?? []) {
    if (!isAlive(proc.pid) || !commandLine(proc.pid).includes(proc.marker)) continue;
    killed.push(...signalTree(proc.pid, 'SIGKILL'));
  }
  // redis-server names itself `redis-server 127.0.0.1:<port>` (sentinels and cluster nodes too): checked against pid reuse.
  for (const redis of [...(manifest?.redis ? [manifest.redis] : []), ...(manifest?.redisServers ?? [])]) {
    if (!isAlive(redis.pid) || !commandLine(redis.pid).includes(`:${redis.port}`)) continue;
    process.kill(redis.pid, 'SIGCONT');
    process.kill(redis.pid, 'SIGKILL');
    killed.push(redis.pid);
  }
  await waitForExit(killed, 10_000);
  // A process that outlived the kills above (a hook's base backup) may still be writing: retry.
  if (existsSync(baseDir)) rmSync(baseDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
}
