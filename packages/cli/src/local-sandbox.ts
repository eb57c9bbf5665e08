import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { CliIo } from './context.js';

/** Where `npm start` records the sandbox it runs, relative to the checkout. */
export const LOCAL_SANDBOX_FILE = join('.pgreplica', 'local.json');

/** What `npm start` records: its config file and the secrets the programs read from the environment. */
export interface LocalSandbox {
  config: string;
  env: Record<string, string>;
  /** The process that runs it; a record whose process is gone is stale. */
  pid: number;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The sandbox `npm start` runs from this checkout: `.pgreplica/local.json` in
 * `cwd` or a parent, if the process that wrote it still runs.
 */
export function findLocalSandbox(cwd: string): LocalSandbox | null {
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    const file = join(dir, LOCAL_SANDBOX_FILE);
    if (existsSync(file)) {
      try {
        const local = JSON.parse(readFileSync(file, 'utf8')) as LocalSandbox;
        if (typeof local.config === 'string' && alive(local.pid)) return local;
      } catch {
        // unreadable: as if absent
      }
      return null;
    }
    if (dirname(dir) === dir) return null;
  }
}

/** A config file to load and the environment to load it with. */
export interface ConfigSource {
  path: string;
  env: NodeJS.ProcessEnv;
}

/** A config that cannot be found; the message says how to give one. */
export class NoConfigError extends Error {
  override readonly name = 'NoConfigError';
}

/**
 * `--config`, else `PGREPLICA_CONFIG`, else the local sandbox of this
 * checkout (its secrets under the caller's environment).
 * @throws NoConfigError naming the three ways
 */
export function resolveConfigSource(flag: string | undefined, io: Pick<CliIo, 'env' | 'cwd'>): ConfigSource {
  const explicit = flag ?? (io.env.PGREPLICA_CONFIG || undefined);
  if (explicit) return { path: explicit, env: io.env };
  const local = findLocalSandbox(io.cwd ?? process.cwd());
  if (local) return { path: local.config, env: { ...local.env, ...io.env } };
  throw new NoConfigError('no configuration: pass --config <file>, set PGREPLICA_CONFIG, or run `npm start` in this checkout (its sandbox is found by default)');
}
