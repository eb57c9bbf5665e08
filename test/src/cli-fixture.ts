import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '@pgreplica/cli';

/** Runs the pgreplica CLI in-process; returns exit code and output. */
export async function cli(args: string[], env: NodeJS.ProcessEnv, interrupted?: Promise<void>, cwd?: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await run(args, {
    out: (t) => {
      out += `${t}\n`;
    },
    err: (t) => {
      err += `${t}\n`;
    },
    env,
    ...(interrupted ? { interrupted } : {}),
    ...(cwd ? { cwd } : {}),
  });
  return { code, out, err };
}

/** Writes a config file for the CLI. */
export function writeConfig(dir: string, name: string, config: Record<string, unknown>): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(config));
  return path;
}
