import { chmodSync, chownSync, copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CommandError, type PostgresNode, resolveServerUser, runCommand, type Sandbox } from '@pgreplica/sandbox';
import pg from 'pg';

/** The repository's deploy/postgres directory. */
export const DEPLOY_DIR = fileURLToPath(new URL('../../deploy/postgres/', import.meta.url));

/** A temporary directory the server user owns; remove it with {@link removeScratch}. */
export function scratchDir(prefix = 'pgreplica-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const user = resolveServerUser();
  if (user.switchUser) chownSync(dir, user.uid, user.gid);
  return dir;
}

export function removeScratch(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * replica-setup.sh copied where the server user can read it: the checkout may
 * live where that user cannot enter (`/root/…`, a mode-700 `mktemp -d`), as
 * an operator's copy would not. One copy per process, removed at exit.
 */
let scriptCopy: string | undefined;
export function readableSetupScript(deployDir: string = DEPLOY_DIR): string {
  if (scriptCopy && deployDir === DEPLOY_DIR) return scriptCopy;
  const dir = scratchDir('pgreplica-setup-');
  const copy = join(dir, 'replica-setup.sh');
  copyFileSync(join(deployDir, 'replica-setup.sh'), copy);
  chmodSync(copy, 0o755);
  const user = resolveServerUser();
  if (user.switchUser) chownSync(copy, user.uid, user.gid);
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  if (deployDir === DEPLOY_DIR) scriptCopy = copy;
  return copy;
}

/** Result of one run of replica-setup.sh. */
export interface SetupRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs deploy/postgres/replica-setup.sh as the server user against a sandbox
 * primary (or any port), with secrets in the environment only.
 */
export async function runReplicaSetup(
  args: string[],
  env: Record<string, string>,
  sandbox?: Sandbox,
  deployDir: string = DEPLOY_DIR,
): Promise<SetupRun> {
  const user = resolveServerUser();
  try {
    const { stdout, stderr } = await runCommand('bash', [readableSetupScript(deployDir), ...args], {
      user,
      env: { PG_BINDIR: sandbox?.binaries.pgBinDir ?? '', ...env },
      timeoutMs: 120_000,
    });
    return { exitCode: 0, stdout, stderr };
  } catch (err) {
    const e = err as CommandError;
    if (e.exitCode === undefined) throw err;
    return { exitCode: e.exitCode ?? -1, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Names of the physical slots on a node. */
export async function slotNames(node: PostgresNode): Promise<string[]> {
  const rows = await node.query<{ slot_name: string }>('SELECT slot_name FROM pg_replication_slots ORDER BY 1');
  return rows.map((r) => r.slot_name);
}

/** Entries of a directory, or null when it does not exist. */
export function listDir(dir: string): string[] | null {
  try {
    return readdirSync(dir).sort();
  } catch {
    return null;
  }
}

/** Polls `check` until it returns true (a throw counts as not yet), failing after `timeoutMs`. */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 15_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err; // e.g. a table not replayed yet: keep polling
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: lastError });
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** What {@link watchWritable} saw. */
export interface WritableWatch {
  /** Most nodes seen writable (not in recovery) in one round. */
  readonly maxWritable: number;
  /** Each round with more than one writable node: when, and which. */
  readonly evidence: string[];
  stop(): Promise<void>;
}

/**
 * Asks every node `pg_is_in_recovery()` every `intervalMs` (short deadlines:
 * a frozen or dead node counts as not writable) until stopped, and keeps the
 * most writable nodes seen at once: a split brain shows as 2.
 */
export function watchWritable(nodes: readonly PostgresNode[], intervalMs = 100): WritableWatch {
  let running = true;
  let maxWritable = 0;
  const evidence: string[] = [];
  const writable = async (node: PostgresNode): Promise<boolean> => {
    const client = new pg.Client({ ...node.connectionConfig, connectionTimeoutMillis: 500, query_timeout: 500 });
    client.on('error', () => {});
    try {
      await client.connect();
      return (await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]?.r === false;
    } catch {
      return false;
    } finally {
      await client.end().catch(() => {});
    }
  };
  const loop = (async () => {
    while (running) {
      const round = await Promise.all(nodes.map(async (n) => ((await writable(n)) ? n.id : null)));
      const ids = round.filter((id) => id !== null);
      maxWritable = Math.max(maxWritable, ids.length);
      if (ids.length > 1) evidence.push(`${new Date().toISOString()} ${ids.join(', ')}`);
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return {
    get maxWritable() {
      return maxWritable;
    },
    evidence,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}
