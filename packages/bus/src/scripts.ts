import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Cluster, Redis } from 'ioredis';

/** The Lua scripts of the bus, one file each under `lua/` (the way BullMQ keeps `commands/*.lua`). */
export const SCRIPT_NAMES = [
  'publish-event',
  'lease-renew',
  'lease-acquire',
  'owner-release',
  'owner-extend',
  'authority-raise',
  'lock-acquire',
  'progress-write',
] as const;
/** @see SCRIPT_NAMES */
export type ScriptName = (typeof SCRIPT_NAMES)[number];

/** One Lua script: its source, its SHA-1 and how many of its arguments are keys. */
export interface BusScript {
  readonly name: ScriptName;
  readonly lua: string;
  readonly sha1: string;
}

const cache = new Map<ScriptName, BusScript>();

/** Loads a script by name from the package's `lua/` folder (src/ and dist/ both sit one level below it). */
export function loadScript(name: ScriptName): BusScript {
  let script = cache.get(name);
  if (!script) {
    const lua = readFileSync(new URL(`../lua/${name}.lua`, import.meta.url), 'utf8');
    script = { name, lua, sha1: createHash('sha1').update(lua).digest('hex') };
    cache.set(name, script);
  }
  return script;
}

/**
 * Runs a script with EVALSHA, loading it with EVAL when the server does not
 * have it yet (after a restart or a failover of Redis).
 */
export async function runScript(redis: Redis | Cluster, name: ScriptName, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
  const script = loadScript(name);
  try {
    return await redis.evalsha(script.sha1, keys.length, ...keys, ...args);
  } catch (err) {
    if (!String((err as Error).message).startsWith('NOSCRIPT')) throw err;
    return redis.eval(script.lua, keys.length, ...keys, ...args);
  }
}
