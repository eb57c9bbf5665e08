import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { defaultSlotName } from '@pgreplica/protocol';
import { type ConfigFile, configFileSchema } from './config-schema.js';

/** TLS to Redis as the programs use it: the CA's PEM read from `redis.tls.caFile`. */
export interface RedisTls {
  ca?: string;
  servername?: string;
}

/** The `redis` section with `tls.caFile` read (each form of it: URL, Sentinel or Cluster). */
export type RedisConfig = ConfigFile['redis'] extends infer R ? (R extends { tls?: unknown } ? Omit<R, 'tls'> & { tls?: RedisTls } : never) : never;

/** The configuration of monitor, worker and CLI: the file plus secrets and overrides from the environment. Frozen. */
export interface Config extends Omit<ConfigFile, 'nodes' | 'redis'> {
  /** Where Redis is; `tls.ca` holds the CA certificate itself (read from `redis.tls.caFile`). */
  redis: RedisConfig;
  /** The nodes, each with its replication slot name resolved. */
  nodes: (ConfigFile['nodes'][number] & { slotName: string })[];
  instanceId: string;
  /** Database password; never logged. */
  databasePassword: string | undefined;
  /** HMAC key for bus events; never logged. */
  busKey: string | undefined;
  /** Bearer token the monitor's HTTP API requires; never logged. */
  httpToken: string | undefined;
  /** Bearer token the worker's HTTP API requires; never logged. */
  workerHttpToken: string | undefined;
  /** CA certificate contents when `database.ssl.caFile` is set. */
  databaseCa: string | undefined;
}

/** A configuration that cannot be used; `issues` names each field and the fix. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly issues: string[];

  constructor(source: string, issues: string[]) {
    super(`invalid configuration (${source}):\n${issues.map((i) => `  - ${i}`).join('\n')}`);
    this.issues = issues;
  }
}

/** Environment variables that override file values (empty counts as unset). */
export const ENV_OVERRIDES = {
  PGREPLICA_CLUSTER: 'cluster',
  PGREPLICA_REDIS_URL: 'redis.url',
  PGREPLICA_INSTANCE_ID: 'instanceId',
  PGREPLICA_HTTP_HOST: 'monitor.http.host',
  PGREPLICA_HTTP_PORT: 'monitor.http.port',
  PGREPLICA_WORKER_HTTP_HOST: 'worker.http.host',
  PGREPLICA_WORKER_HTTP_PORT: 'worker.http.port',
  PGREPLICA_FAILOVER_POLICY: 'failover.policy',
  PGREPLICA_PROBE_INTERVAL_MS: 'monitor.probeIntervalMs',
} as const;

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    if (typeof node[part] !== 'object' || node[part] === null) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts.at(-1)!] = value;
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, part) => (typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${String(part)}` : String(part)), '') || '(root)';
}

function readSecretFile(path: string, field: string, issues: string[]): string | undefined {
  try {
    const value = readFileSync(path, 'utf8').split('\n')[0]!.trim();
    if (!value) issues.push(`${field}: ${path} is empty; put the secret on its first line`);
    return value || undefined;
  } catch (err) {
    issues.push(`${field}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); fix the path or its permissions`);
    return undefined;
  }
}

/** A whole PEM file (a CA certificate, possibly a bundle). */
function readPemFile(path: string, field: string, issues: string[]): string | undefined {
  try {
    const pem = readFileSync(path, 'utf8');
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
      issues.push(`${field}: ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
      return undefined;
    }
    return pem;
  } catch (err) {
    issues.push(`${field}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); fix the path or its permissions`);
    return undefined;
  }
}

/**
 * Validates a parsed config object plus environment overrides and secrets.
 * @throws ConfigError listing every problem at once.
 */
export function resolveConfig(raw: unknown, env: NodeJS.ProcessEnv, source = 'config'): Config {
  const issues: string[] = [];
  const input = structuredClone(raw ?? {}) as Record<string, unknown>;
  if (typeof input !== 'object' || Array.isArray(input)) throw new ConfigError(source, ['(root): must be a mapping of settings']);
  for (const [variable, path] of Object.entries(ENV_OVERRIDES)) {
    const value = env[variable];
    if (value === undefined || value === '') continue;
    const numeric = path.endsWith('port') || path.endsWith('Ms');
    if (numeric && !/^\d+$/.test(value)) {
      issues.push(`${variable}: must be a whole number, got "${value}"`);
      continue;
    }
    if (path === 'redis.url') {
      // The URL replaces the file's server, Sentinel group or Cluster, but not its TLS settings.
      const tls = (input.redis as { tls?: unknown } | undefined)?.tls;
      input.redis = tls === undefined ? { url: value } : { url: value, tls };
    }
    else setPath(input, path, numeric ? Number(value) : value);
  }
  // Checked on the raw input so it is reported together with schema errors.
  if (Array.isArray(input.nodes)) {
    const seen = new Map<unknown, number>();
    const slots = new Map<string, number>();
    input.nodes.forEach((n: unknown, i: number) => {
      const node = (n ?? {}) as { id?: unknown; slotName?: unknown };
      if (typeof node.id !== 'string') return;
      const first = seen.get(node.id);
      if (first !== undefined) issues.push(`nodes[${i}].id: duplicate node id "${node.id}" (also nodes[${first}]); ids must be unique`);
      else seen.set(node.id, i);
      const slot = typeof node.slotName === 'string' ? node.slotName : defaultSlotName(node.id);
      const other = slots.get(slot);
      if (other !== undefined && first === undefined) {
        issues.push(`nodes[${i}].slotName: slot name "${slot}" is also nodes[${other}]'s; give one of them its own slotName`);
      } else slots.set(slot, i);
    });
  }
  const parsed = configFileSchema.safeParse(input);
  if (!parsed.success || issues.length > 0) {
    for (const issue of parsed.error?.issues ?? []) {
      const message =
        issue.code === 'unrecognized_keys'
          ? `unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}: remove or correct the spelling`
          : issue.message;
      issues.push(`${formatPath(issue.path)}: ${message}`);
    }
    throw new ConfigError(source, issues);
  }
  const file = parsed.data;
  const nonEmpty = (v: string | undefined) => (v === undefined || v === '' ? undefined : v);
  const databasePassword = file.database.passwordFile
    ? readSecretFile(file.database.passwordFile, 'database.passwordFile', issues)
    : nonEmpty(env[file.database.passwordEnv]);
  const busKey = file.bus.keyFile ? readSecretFile(file.bus.keyFile, 'bus.keyFile', issues) : nonEmpty(env[file.bus.keyEnv]);
  if (busKey !== undefined && busKey.length < 16) issues.push(`bus key: must be at least 16 characters (set ${file.bus.keyEnv} or bus.keyFile)`);
  const databaseCa = file.database.ssl?.caFile ? readPemFile(file.database.ssl.caFile, 'database.ssl.caFile', issues) : undefined;
  const redisTls = file.redis.tls;
  const redisCa = redisTls?.caFile ? readPemFile(redisTls.caFile, 'redis.tls.caFile', issues) : undefined;
  const secretNames = new Set([file.database.passwordEnv, file.bus.keyEnv, file.monitor.http.tokenEnv, file.worker.http.tokenEnv, 'PGREPLICA_REPLICATION_PASSWORD', 'PGPASSWORD']);
  for (const name of file.worker.hooks.passEnv) {
    if (secretNames.has(name)) issues.push(`worker.hooks.passEnv: "${name}" holds a secret of pgreplica; hooks must not get it (remove it, and give the hook its own credentials)`);
  }
  if (issues.length > 0) throw new ConfigError(source, issues);
  const { tls: _tlsFile, ...redisTarget } = file.redis;
  const redis = (
    redisTls === undefined
      ? redisTarget
      : { ...redisTarget, tls: { ...(redisCa !== undefined ? { ca: redisCa } : {}), ...(redisTls.servername !== undefined ? { servername: redisTls.servername } : {}) } }
  ) as RedisConfig;
  return Object.freeze({
    ...file,
    redis,
    nodes: file.nodes.map((n) => ({ ...n, slotName: n.slotName ?? defaultSlotName(n.id) })),
    instanceId: file.instanceId ?? `${hostname()}:${process.pid}`,
    databasePassword,
    busKey,
    httpToken: nonEmpty(env[file.monitor.http.tokenEnv]),
    workerHttpToken: nonEmpty(env[file.worker.http.tokenEnv]),
    databaseCa,
  });
}

/** Reads and validates a YAML or JSON config file. @throws ConfigError */
export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`cannot read the file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); pass an existing file with --config`]);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text); // YAML is a superset of JSON: both work.
  } catch (err) {
    throw new ConfigError(path, [`not valid YAML or JSON: ${(err as Error).message}`]);
  }
  return resolveConfig(raw, env, path);
}
