import type { Config } from '@pgreplica/runtime';

/** Variables of the worker's environment every hook gets: what a shell needs, no secret. */
const BASE = ['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'LANG', 'LANGUAGE', 'TZ', 'TMPDIR'];

/**
 * The whole environment of a hook: {@link BASE}, `LC_*`, the names in
 * `worker.hooks.passEnv`, then `extra` (the node variables). Nothing else of
 * the worker's environment — its database password, bus key and HTTP token
 * stay in the worker.
 */
export function hookEnv(config: Pick<Config, 'worker'>, extra: Record<string, string>, from: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const names = new Set([...BASE, ...config.worker.hooks.passEnv, ...Object.keys(from).filter((k) => k.startsWith('LC_'))]);
  const env: Record<string, string> = {};
  for (const name of names) {
    const value = from[name];
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...extra };
}
