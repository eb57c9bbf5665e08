import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { CLUSTER_NAME_PATTERN, NODE_ID_PATTERN, NODE_TAGS } from '@pgreplica/protocol';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

/** Shortest probe interval accepted: faster probing loads the nodes for no gain. */
export const MIN_PROBE_INTERVAL_MS = 100;

const ms = (what: string) => z.number({ error: `${what} must be a number of milliseconds` }).int().positive();
const bytes = z.number().int().min(0);
const hostPort = z.strictObject({ host: z.string().min(1), port: z.number().int().min(1).max(65535) });

const lagLimits = z.strictObject({
  degradedLagMs: ms('degradedLagMs').optional(),
  unhealthyLagMs: ms('unhealthyLagMs').optional(),
  degradedLagBytes: bytes.optional(),
  unhealthyLagBytes: bytes.optional(),
});

const nodeSchema = z.strictObject({
  id: z.string().regex(NODE_ID_PATTERN, 'must be 1-63 letters, digits, "_", "." or "-" (it appears in keys and URLs)'),
  host: z.string().min(1, 'must name the host or address of the node'),
  port: z.number({ error: 'each node needs a port (1-65535)' }).int().min(1).max(65535),
  priority: z.number().int().default(100),
  weight: z.number().min(0).default(1),
  zone: z.string().min(1).optional(),
  tags: z.array(z.enum(NODE_TAGS)).default([]),
  /** Per-node lag limits; the cluster's `thresholds` apply where absent. */
  lag: lagLimits.optional(),
});

const redisSchema = z.union([
  z.strictObject({ url: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL') }),
  z.strictObject({ sentinels: z.array(hostPort).min(1), name: z.string().min(1), password: z.string().optional(), db: z.number().int().min(0).optional() }),
  z.strictObject({ cluster: z.array(hostPort).min(1) }),
]);

/** The file's shape. Secrets are never in it: they come from the environment or files. */
export const configFileSchema = z
  .strictObject({
    cluster: z.string().regex(CLUSTER_NAME_PATTERN, 'must be 1-63 letters, digits, "_", "." or "-"'),
    /** Name of this monitor instance (leadership, heartbeat row). */
    instanceId: z.string().regex(/^[A-Za-z0-9_.:-]{1,100}$/).optional(),
    redis: redisSchema,
    nodes: z.array(nodeSchema).min(1, 'list at least the primary'),
    database: z.strictObject({
      user: z.string().min(1),
      database: z.string().min(1).default('postgres'),
      /** Environment variable holding the password. */
      passwordEnv: z.string().min(1).default('PGREPLICA_DB_PASSWORD'),
      /** File holding the password (first line), e.g. a mounted secret. */
      passwordFile: z.string().min(1).optional(),
      ssl: z
        .strictObject({
          rejectUnauthorized: z.boolean().default(true),
          caFile: z.string().min(1).optional(),
          servername: z.string().optional(),
        })
        .optional(),
      connectTimeoutMs: ms('database.connectTimeoutMs').default(2_000),
      statementTimeoutMs: ms('database.statementTimeoutMs').default(3_000),
    }),
    probeIntervalMs: ms('probeIntervalMs').min(MIN_PROBE_INTERVAL_MS, `must be at least ${MIN_PROBE_INTERVAL_MS}`).default(1_000),
    /** A full snapshot goes out at least this often. */
    heartbeatMs: ms('heartbeatMs').default(5_000),
    /** Write the heartbeat row on the primary (needs CREATE and INSERT/UPDATE; see README). */
    writeHeartbeat: z.boolean().default(true),
    thresholds: z
      .strictObject({
        degradedLagMs: ms('thresholds.degradedLagMs').default(5_000),
        unhealthyLagMs: ms('thresholds.unhealthyLagMs').default(30_000),
        degradedLagBytes: bytes.default(16 * 1024 * 1024),
        unhealthyLagBytes: bytes.default(256 * 1024 * 1024),
        rise: z.number().int().min(1).default(2),
        fall: z.number().int().min(1).default(3),
        receiverDownAfterMs: ms('thresholds.receiverDownAfterMs').default(10_000),
      })
      .prefault({}),
    failover: z
      .strictObject({
        policy: z.enum(['auto', 'manual']).default('manual'),
        failoverAfterMs: ms('failover.failoverAfterMs').default(10_000),
        maxLagOnFailoverBytes: bytes.default(16 * 1024 * 1024),
        /** A replica whose receiver heard from the primary this recently is a witness that it lives. */
        witnessFreshMs: ms('failover.witnessFreshMs').default(20_000),
      })
      .prefault({}),
    slots: z
      .strictObject({
        maxRetainedBytes: bytes.default(1024 * 1024 * 1024),
        inactiveGraceMs: ms('slots.inactiveGraceMs').default(10 * 60_000),
      })
      .prefault({}),
    bus: z
      .strictObject({
        /** Environment variable holding the HMAC key that signs events; unsigned when unset. */
        keyEnv: z.string().min(1).default('PGREPLICA_BUS_KEY'),
        keyFile: z.string().min(1).optional(),
        streamMaxLen: z.number().int().min(100).default(10_000),
      })
      .prefault({}),
    leader: z.strictObject({ leaseTtlMs: ms('leader.leaseTtlMs').min(1_000).default(5_000) }).prefault({}),
    /** Settings only pgreplica-worker reads (the two programs share one file). */
    worker: z
      .strictObject({
        http: z.strictObject({ host: z.string().min(1).default('127.0.0.1'), port: z.number().int().min(0).max(65535).default(9188) }).prefault({}),
        /** Role replicas stream as, written into primary_conninfo when the worker repoints them. */
        replication: z
          .strictObject({
            user: z.string().min(1).default('replicator'),
            passwordEnv: z.string().min(1).default('PGREPLICA_REPLICATION_PASSWORD'),
            passwordFile: z.string().min(1).optional(),
          })
          .prefault({}),
        /**
         * Shell commands for what needs host access (never an implied SSH). Each gets
         * PGREPLICA_NODE_ID, PGREPLICA_NODE_HOST, PGREPLICA_NODE_PORT and, where it applies,
         * PGREPLICA_PRIMARY_ID, PGREPLICA_PRIMARY_HOST, PGREPLICA_PRIMARY_PORT in its environment.
         */
        hooks: z
          .strictObject({
            /** Fence a node (stop it, cut its network…). Without it, fencing is soft: read-only + sessions terminated. */
            fence: z.string().min(1).optional(),
            /** Stop the old primary during a switchover (so its last WAL reaches the candidate). */
            stop: z.string().min(1).optional(),
            /** Make the old primary a replica of the new one and start it (switchover; pg_rewind where needed). */
            rejoin: z.string().min(1).optional(),
            timeoutMs: ms('worker.hooks.timeoutMs').default(60_000),
          })
          .prefault({}),
        /** At most one automatic failover per window. */
        flapWindowMs: ms('worker.flapWindowMs').default(10 * 60_000),
        /** How long a candidate may take to replay what it received (failover) or the old primary's last LSN (switchover). */
        catchupTimeoutMs: ms('worker.catchupTimeoutMs').default(30_000),
        /** How long repointed replicas may take to stream from the new primary. */
        repointTimeoutMs: ms('worker.repointTimeoutMs').default(30_000),
      })
      .prefault({}),
    http: z
      .strictObject({
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(9187),
        /** Environment variable holding a bearer token the HTTP API requires; open when unset. */
        tokenEnv: z.string().min(1).default('PGREPLICA_HTTP_TOKEN'),
      })
      .prefault({}),
  })
  .superRefine((c, ctx) => {
    if (c.thresholds.degradedLagMs > c.thresholds.unhealthyLagMs) {
      ctx.addIssue({ code: 'custom', path: ['thresholds', 'degradedLagMs'], message: 'must not exceed thresholds.unhealthyLagMs' });
    }
    if (c.thresholds.degradedLagBytes > c.thresholds.unhealthyLagBytes) {
      ctx.addIssue({ code: 'custom', path: ['thresholds', 'degradedLagBytes'], message: 'must not exceed thresholds.unhealthyLagBytes' });
    }
    if (c.heartbeatMs < c.probeIntervalMs) {
      ctx.addIssue({ code: 'custom', path: ['heartbeatMs'], message: `must be at least probeIntervalMs (${c.probeIntervalMs})` });
    }
    if (c.leader.leaseTtlMs < 2 * c.probeIntervalMs) {
      ctx.addIssue({ code: 'custom', path: ['leader', 'leaseTtlMs'], message: `must be at least twice probeIntervalMs (${2 * c.probeIntervalMs}) so the lease is renewed in time` });
    }
  });

/** The validated file. */
export type ConfigFile = z.infer<typeof configFileSchema>;

/** The monitor's configuration: the file plus secrets and overrides from the environment. Frozen. */
export interface MonitorConfig extends ConfigFile {
  instanceId: string;
  /** Database password; never logged. */
  databasePassword: string | undefined;
  /** HMAC key for bus events; never logged. */
  busKey: string | undefined;
  /** Bearer token for the HTTP API; never logged. */
  httpToken: string | undefined;
  /** CA certificate contents when `database.ssl.caFile` is set. */
  databaseCa: string | undefined;
  /** Password of the replication role (worker: repointing); never logged. */
  replicationPassword: string | undefined;
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
  PGREPLICA_HTTP_HOST: 'http.host',
  PGREPLICA_HTTP_PORT: 'http.port',
  PGREPLICA_FAILOVER_POLICY: 'failover.policy',
  PGREPLICA_PROBE_INTERVAL_MS: 'probeIntervalMs',
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

/**
 * Validates a parsed config object plus environment overrides and secrets.
 * @throws ConfigError listing every problem at once.
 */
export function resolveConfig(raw: unknown, env: NodeJS.ProcessEnv, source = 'config'): MonitorConfig {
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
    if (path === 'redis.url') input.redis = { url: value };
    else setPath(input, path, numeric ? Number(value) : value);
  }
  // Checked on the raw input so it is reported together with schema errors.
  if (Array.isArray(input.nodes)) {
    const seen = new Map<unknown, number>();
    input.nodes.forEach((n: unknown, i: number) => {
      const id = (n as { id?: unknown } | null)?.id;
      if (typeof id !== 'string') return;
      const first = seen.get(id);
      if (first !== undefined) issues.push(`nodes[${i}].id: duplicate node id "${id}" (also nodes[${first}]); ids must be unique`);
      else seen.set(id, i);
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
  const databaseCa = file.database.ssl?.caFile ? readSecretFile(file.database.ssl.caFile, 'database.ssl.caFile', issues) : undefined;
  const replication = file.worker.replication;
  const replicationPassword = replication.passwordFile
    ? readSecretFile(replication.passwordFile, 'worker.replication.passwordFile', issues)
    : nonEmpty(env[replication.passwordEnv]);
  if (issues.length > 0) throw new ConfigError(source, issues);
  return Object.freeze({
    ...file,
    instanceId: file.instanceId ?? `${hostname()}:${process.pid}`,
    databasePassword,
    busKey,
    httpToken: nonEmpty(env[file.http.tokenEnv]),
    databaseCa,
    replicationPassword,
  });
}

/** node-postgres `ssl` options from `database.ssl` (undefined: no TLS). */
export function databaseSsl(config: Pick<MonitorConfig, 'database' | 'databaseCa'>): { rejectUnauthorized: boolean; ca?: string; servername?: string } | undefined {
  const ssl = config.database.ssl;
  if (!ssl) return undefined;
  return {
    rejectUnauthorized: ssl.rejectUnauthorized,
    ...(config.databaseCa !== undefined ? { ca: config.databaseCa } : {}),
    ...(ssl.servername !== undefined ? { servername: ssl.servername } : {}),
  };
}

/** Reads and validates a YAML or JSON config file. @throws ConfigError */
export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): MonitorConfig {
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
