/**
 * A throw-away cluster on loopback for tests, benchmarks and `npm start`:
 * `startSandbox` makes the primary (initdb), the replicas (through
 * deploy/postgres/replica-setup.sh, as an operator would), Redis (optionally
 * with TLS and an ACL user), and a reaper that removes everything if the
 * owner dies. Over 300 lines because set-up, its rollback on failure and the
 * Sandbox handle share the same steps; each server's own operations are in
 * postgres-node.ts and redis-server.ts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Binaries, findBinaries } from './binaries.js';
import { SandboxError } from './errors.js';
import { resolveServerUser, runCommand } from './exec.js';
import { destroySandbox, readManifest, recordRedisPid, SANDBOX_DIR_PREFIX, type SandboxManifest, writeManifest } from './manifest.js';
import { freePort } from './ports.js';
import { libpqTlsEnv, type NodeContext, type NodeTls, PostgresNode, type StopMode, slotNameOf } from './postgres-node.js';
import { type RedisClusterGroup, type RedisClusterOptions, startRedisClusterGroup } from './redis-cluster.js';
import { type RedisSentinelGroup, type RedisSentinelOptions, startRedisSentinelGroup } from './redis-sentinel.js';
import { RedisServer } from './redis-server.js';
import { createCertificateAuthority, issueServerCertificate } from './tls.js';

/** Options of {@link startSandbox}. */
export interface SandboxOptions {
  /**
   * Number of streaming replicas.
   * @default 2
   */
  replicas?: number;
  /**
   * Node ids, the primary first (overrides `replicas`): e.g. `['pg-1', 'DB.East']`
   * to exercise ids that are not slot names.
   * @default ['p1', 'r1', 'r2', …]
   */
  nodeIds?: string[];
  /**
   * Start Redis too: `true` one redis-server ({@link Sandbox.redis});
   * `'sentinel'` a master, a replica and three sentinels
   * ({@link Sandbox.redisSentinel}, see `redisSentinel`); `'cluster'` a Redis
   * Cluster of three primaries with a replica each ({@link Sandbox.redisCluster},
   * see `redisCluster`). Sentinel and Cluster are plain TCP, without `tls`.
   * {@link Sandbox.redisTarget} is pgreplica's `redis` config for any of them.
   * @default true
   */
  redis?: boolean | 'sentinel' | 'cluster';
  /** The Sentinel group of `redis: 'sentinel'`. @default DEFAULT_REDIS_SENTINEL_OPTIONS */
  redisSentinel?: RedisSentinelOptions;
  /** The Cluster of `redis: 'cluster'`. @default DEFAULT_REDIS_CLUSTER_OPTIONS */
  redisCluster?: RedisClusterOptions;
  /**
   * Directory the sandbox directory is created in.
   * @default os.tmpdir()
   */
  parentDir?: string;
  /**
   * Name of the replication role the setup script creates.
   * @default 'replicator'
   */
  replicationUser?: string;
  /**
   * Directory holding replication.conf, pg_hba.replication.conf and replica-setup.sh.
   * @default the repository's deploy/postgres
   */
  deployDir?: string;
  /** Extra postgresql.conf settings for every node, e.g. `{ max_connections: 200 }`. */
  settings?: Record<string, string | number | boolean>;
  /**
   * TLS everywhere, verified: a throw-away CA and a server certificate for
   * `localhost` / `127.0.0.1` (openssl) in the sandbox directory; PostgreSQL
   * with `ssl = on` and `hostssl` lines only for TCP (Unix sockets stay
   * `trust`), replicas streaming with `sslmode=verify-full`; redis-server on a
   * TLS port only, `default` user off and one ACL user limited to the
   * cluster's keys and the commands pgreplica needs ({@link SANDBOX_REDIS_ACL}).
   * See {@link Sandbox.tls} and {@link RedisServer.url}.
   * @default false
   */
  tls?: boolean;
  /**
   * Bus cluster name the Redis ACL user may touch (`pgreplica:{<cluster>}:*`); with `tls` only.
   * @default 'main'
   */
  cluster?: string;
  /**
   * Receives one line per step, for progress output.
   * @default no output
   */
  log?: (message: string) => void;
}

/** Defaults of {@link SandboxOptions}. */
export const DEFAULT_SANDBOX_OPTIONS = {
  replicas: 2,
  redis: true,
  replicationUser: 'replicator',
  tls: false,
  cluster: 'main',
} as const;

/** Name of the Redis ACL user of a TLS sandbox. */
export const SANDBOX_REDIS_USER = 'pgreplica';

/**
 * ACL rules (after `on >password`) of the Redis user of a TLS sandbox for bus
 * cluster `cluster`: the cluster's keys and channels only (BullMQ's queue is
 * under the same prefix); data commands of every type on them (categories,
 * not a list: BullMQ's scripts use some fifty, many only on rare paths such
 * as a failing or stalled job), pub/sub, the connection commands (AUTH,
 * HELLO, CLIENT SETNAME, PING),
 * nothing `@dangerous` but INFO (BullMQ reads the server version and
 * eviction policy from it), and no command that reaches past the key
 * prefix: FUNCTION (server-wide), SCAN and PUBSUB (list others' keys and
 * channels), SELECT and MOVE (other databases). TIME, EVAL and EVALSHA are
 * what BullMQ's Lua scripts need; every command a script calls is checked
 * against these rules too.
 */
export function sandboxRedisAcl(cluster: string): string {
  const prefix = `pgreplica:{${cluster}}:*`;
  return [
    `resetkeys ~${prefix} resetchannels &${prefix}`,
    '-@all +@read +@write +@pubsub +@connection -@dangerous',
    '-function -scan -pubsub -select -move',
    '+info +time +eval +evalsha',
  ].join(' ');
}

/** Upper bound on replicas, so a typo cannot fork a hundred servers. */
export const MAX_REPLICAS = 8;

/** What `writeStateFile()` records for the hook program. */
export interface SandboxState {
  baseDir: string;
  pgBinDir: string;
  user: NodeContext['user'];
  logDir: string;
  socketDir: string;
  superuser: { name: string; password: string };
  database: string;
  replicationUser: { name: string; password: string };
  nodes: { id: string; port: number; dataDir: string }[];
  /** Extra settings of every node (node.conf). */
  settings?: Record<string, string | number | boolean> | undefined;
  /** Certificate files when the sandbox runs with TLS. */
  tls?: NodeTls | undefined;
}

/** One row of {@link Sandbox.replicationStatus}. */
export interface ReplicationRow {
  /** Node id (its slot name and application_name are {@link slotNameOf} it). */
  id: string;
  state: string | null;
  syncState: string | null;
  slotActive: boolean;
  replayLagBytes: number | null;
}

const DEFAULT_DEPLOY_DIR = fileURLToPath(new URL('../../../deploy/postgres/', import.meta.url));

function password(): string {
  return randomBytes(18).toString('base64url');
}


/**
 * A PostgreSQL primary, its streaming replicas and a Redis, on free loopback
 * ports in one temporary directory. Replicas are seeded with the project's own
 * `deploy/postgres/replica-setup.sh`. A reaper process stops everything if the
 * owner dies without calling {@link Sandbox.stop}.
 */
export class Sandbox {
  readonly baseDir: string;
  readonly binaries: Binaries;
  readonly primary: PostgresNode;
  readonly replicas: readonly PostgresNode[];
  /** The one redis-server of `redis: true`; null with Sentinel, Cluster or no Redis. */
  readonly redis: RedisServer | null;
  /** The master, replica and sentinels of `redis: 'sentinel'`; null otherwise. */
  readonly redisSentinel: RedisSentinelGroup | null;
  /** The Redis Cluster of `redis: 'cluster'`; null otherwise. */
  readonly redisCluster: RedisClusterGroup | null;
  /** Replication role; its password is needed to seed more replicas by hand. */
  readonly replicationUser: { name: string; password: string };
  /**
   * With `tls: true`, the CA every server's certificate is signed by (`caFile`
   * for `sslrootcert` / `database.ssl.caFile` / `redis.tls.caFile`, `ca` its
   * PEM for node-postgres and ioredis); null without TLS.
   */
  readonly tls: { caFile: string; ca: string } | null;
  readonly #reaper: ChildProcess;
  readonly #ctx: NodeContext;
  #stopping: Promise<void> | undefined;

  /** @internal use {@link startSandbox} */
  constructor(init: {
    baseDir: string;
    binaries: Binaries;
    primary: PostgresNode;
    replicas: PostgresNode[];
    redis: RedisServer | null;
    redisSentinel?: RedisSentinelGroup | null;
    redisCluster?: RedisClusterGroup | null;
    replicationUser: { name: string; password: string };
    reaper: ChildProcess;
    ctx: NodeContext;
  }) {
    this.baseDir = init.baseDir;
    this.binaries = init.binaries;
    this.primary = init.primary;
    this.replicas = init.replicas;
    this.redis = init.redis;
    this.redisSentinel = init.redisSentinel ?? null;
    this.redisCluster = init.redisCluster ?? null;
    this.replicationUser = init.replicationUser;
    this.tls = init.ctx.tls ? { caFile: init.ctx.tls.caFile, ca: readFileSync(init.ctx.tls.caFile, 'utf8') } : null;
    this.#reaper = init.reaper;
    this.#ctx = init.ctx;
  }

  /**
   * Writes `<baseDir>/state.json` (mode 600; secrets included, loopback
   * sandbox only) for the hook program `pgreplica-sandbox-hook`, and returns
   * its path: point PGREPLICA_SANDBOX_STATE at it in the worker's environment.
   */
  writeStateFile(): string {
    const path = join(this.baseDir, 'state.json');
    const node = this.primary.connectionConfig;
    const state: SandboxState = {
      baseDir: this.baseDir,
      pgBinDir: this.binaries.pgBinDir,
      user: this.#ctx.user,
      logDir: this.#ctx.logDir,
      socketDir: this.#ctx.socketDir,
      superuser: { name: String(node.user), password: String(node.password) },
      database: String(node.database),
      replicationUser: this.replicationUser,
      nodes: this.nodes.map((n) => ({ id: n.id, port: n.port, dataDir: n.dataDir })),
      settings: this.#ctx.settings,
      tls: this.#ctx.tls,
    };
    writeFileSync(path, JSON.stringify(state), { mode: 0o600 });
    return path;
  }

  /**
   * pgreplica's `redis` config for the sandbox's Redis, whichever kind:
   * `{ url }` (with `tls`), `{ sentinels, name }` or `{ cluster }`; null without Redis.
   */
  get redisTarget(): { url: string; tls?: { caFile: string } } | { sentinels: { host: string; port: number }[]; name: string } | { cluster: { host: string; port: number }[] } | null {
    if (this.redisSentinel) return this.redisSentinel.target;
    if (this.redisCluster) return this.redisCluster.target;
    if (!this.redis) return null;
    return this.redis.caFile ? { url: this.redis.url, tls: { caFile: this.redis.caFile } } : { url: this.redis.url };
  }

  /** Every PostgreSQL node, primary first. */
  get nodes(): readonly PostgresNode[] {
    return [this.primary, ...this.replicas];
  }

  /** The node with this id. @throws SandboxError when there is none. */
  node(id: string): PostgresNode {
    const node = this.nodes.find((n) => n.id === id);
    if (!node) throw new SandboxError('invalid-option', `no sandbox node "${id}" (nodes: ${this.nodes.map((n) => n.id).join(', ')})`);
    return node;
  }

  /**
   * Makes a process part of the sandbox: if the owner dies, the reaper kills
   * it (its whole process tree) with the servers. `marker` must appear in its
   * command line (a config path, say), so a reused pid is never killed.
   */
  adoptProcess(name: string, pid: number, marker: string): void {
    const manifest = readManifest(this.baseDir);
    if (!manifest) throw new SandboxError('invalid-option', `no manifest in ${this.baseDir}`);
    manifest.processes = [...(manifest.processes ?? []), { name, pid, marker }];
    writeManifest(manifest);
  }

  /** pid of the reaper process (for tests of orphan cleanup). */
  get reaperPid(): number | undefined {
    return this.#reaper.pid;
  }

  /** Replication as the primary sees it: one row per slot, joined with pg_stat_replication. */
  async replicationStatus(on: PostgresNode = this.primary): Promise<ReplicationRow[]> {
    const rows = await on.query<{ id: string; state: string | null; sync_state: string | null; active: boolean; lag: string | null }>(
      `SELECT s.slot_name AS id, r.state, r.sync_state, s.active,
              pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::text AS lag
         FROM pg_replication_slots s
         LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
        WHERE s.slot_type = 'physical'
        ORDER BY s.slot_name`,
    );
    const bySlot = new Map(this.nodes.map((n) => [n.slotName, n.id]));
    return rows.map((r) => ({
      id: bySlot.get(r.id) ?? r.id,
      state: r.state,
      syncState: r.sync_state,
      slotActive: r.active,
      replayLagBytes: r.lag === null ? null : Number(r.lag),
    }));
  }

  /** Waits until every replica streams from the primary through its slot. */
  async waitForStreaming(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rows = await this.replicationStatus();
      const streaming = new Set(rows.filter((r) => r.state === 'streaming' && r.slotActive).map((r) => r.id));
      if (this.replicas.every((r) => streaming.has(r.id))) return;
      if (Date.now() > deadline) {
        throw new SandboxError('timeout', `replicas not streaming after ${timeoutMs} ms: ${JSON.stringify(rows)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Waits until each given replica has replayed the primary's current WAL position. */
  async waitForReplay(replicas: readonly PostgresNode[] = this.replicas, timeoutMs = 30_000): Promise<void> {
    const [{ lsn } = { lsn: '0/0' }] = await this.primary.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    const deadline = Date.now() + timeoutMs;
    for (const replica of replicas) {
      for (;;) {
        const [row] = await replica.query<{ done: boolean }>('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS done', [lsn]);
        if (row?.done) break;
        if (Date.now() > deadline) throw new SandboxError('timeout', `replica ${replica.id} did not replay ${lsn} within ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  }

  /**
   * Stops every server and deletes the directory. Idempotent; concurrent
   * callers share one stop. Servers that do not stop cleanly are killed.
   */
  stop(mode: StopMode = 'fast'): Promise<void> {
    this.#stopping ??= (async () => {
      const errors: unknown[] = [];
      const groups = async () => {
        errors.push(...(await this.redisSentinel?.stop() ?? []), ...(await this.redisCluster?.stop() ?? []));
      };
      await Promise.all(
        [...this.nodes.map((n) => () => n.stop(mode)), ...(this.redis ? [() => this.redis!.stop()] : []), groups].map((step) =>
          step().catch((err: unknown) => errors.push(err)),
        ),
      );
      // Whatever did not stop gracefully is killed here; the directory goes too.
      await destroySandbox(this.baseDir);
      this.#reaper.stdin?.end();
      if (errors.length > 0) {
        throw new SandboxError('command-failed', `sandbox stopped, but ${errors.length} server(s) had to be killed`, { cause: errors[0] });
      }
    })();
    return this.#stopping;
  }

  /** `await using sandbox = await startSandbox()` stops it at the end of the block. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** Starts the reaper: it holds the read end of our pipe and cleans up when we die. */
function startReaper(baseDir: string): ChildProcess {
  const reaperPath = fileURLToPath(new URL('./reaper.js', import.meta.url));
  const child = spawn(process.execPath, [reaperPath, baseDir], {
    detached: true,
    stdio: ['pipe', 'ignore', 'inherit'],
  });
  child.unref();
  // Our end of the pipe must not keep the owner alive.
  (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  child.on('error', () => {});
  return child;
}

/**
 * Starts a primary, `replicas` streaming replicas and (by default) a Redis,
 * each on a free 127.0.0.1 port, and waits until every replica streams.
 * As root, the PostgreSQL servers run as the `postgres` OS user.
 * @throws SandboxError when a server cannot start; nothing is left running then.
 */
export async function startSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  const replicaCount = options.nodeIds ? options.nodeIds.length - 1 : (options.replicas ?? DEFAULT_SANDBOX_OPTIONS.replicas);
  if (!Number.isInteger(replicaCount) || replicaCount < 0 || replicaCount > MAX_REPLICAS) {
    throw new SandboxError('invalid-option', `replicas must be an integer from 0 to ${MAX_REPLICAS}, got ${replicaCount}`);
  }
  const ids = options.nodeIds ?? ['p1', ...Array.from({ length: replicaCount }, (_, i) => `r${i + 1}`)];
  const slots = new Set(ids.map(slotNameOf));
  if (ids.length === 0 || slots.size !== ids.length || ids.some((id) => !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(id))) {
    throw new SandboxError('invalid-option', `nodeIds must be distinct ids of 1-63 letters, digits, "_", "." or "-" with distinct slot names, got ${JSON.stringify(ids)}`);
  }
  const replicationUserName = options.replicationUser ?? DEFAULT_SANDBOX_OPTIONS.replicationUser;
  const tls = options.tls ?? DEFAULT_SANDBOX_OPTIONS.tls;
  const redisKind = options.redis ?? DEFAULT_SANDBOX_OPTIONS.redis;
  if (redisKind !== true && redisKind !== false && redisKind !== 'sentinel' && redisKind !== 'cluster') {
    throw new SandboxError('invalid-option', `redis must be true, false, 'sentinel' or 'cluster', got ${JSON.stringify(redisKind)}`);
  }
  if (tls && (redisKind === 'sentinel' || redisKind === 'cluster')) {
    throw new SandboxError('invalid-option', `redis: '${redisKind}' runs without TLS: drop tls, or use redis: true`);
  }
  const cluster = options.cluster ?? DEFAULT_SANDBOX_OPTIONS.cluster;
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(cluster)) {
    throw new SandboxError('invalid-option', `cluster must be 1-63 letters, digits, "_", "." or "-", got ${JSON.stringify(cluster)}`);
  }
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(replicationUserName)) {
    throw new SandboxError('invalid-option', `replicationUser must be a lower-case identifier, got "${replicationUserName}"`);
  }
  const log = options.log ?? (() => {});
  const deployDir = options.deployDir ?? DEFAULT_DEPLOY_DIR;
  const binaries = findBinaries();
  const user = resolveServerUser();

  const baseDir = mkdtempSync(join(options.parentDir ?? tmpdir(), SANDBOX_DIR_PREFIX));
  const manifest: SandboxManifest = { version: 1, baseDir, ownerPid: process.pid, postgres: [], redis: null };
  writeManifest(manifest);
  const reaper = startReaper(baseDir);
  try {
    return await buildSandbox();
  } catch (err) {
    await destroySandbox(baseDir).catch(() => {});
    reaper.stdin?.end();
    throw err;
  }

  async function buildSandbox(): Promise<Sandbox> {
    const confDir = join(baseDir, 'conf');
    const logDir = join(baseDir, 'logs');
    const socketDir = join(baseDir, 'sock');
    for (const dir of [confDir, logDir, socketDir]) mkdirSync(dir, { mode: 0o700 });
    // The servers' files live in here: the server user owns the whole tree.
    const own = (path: string) => {
      if (user.switchUser) chownSync(path, user.uid, user.gid);
    };
    for (const dir of [baseDir, confDir, logDir, socketDir]) own(dir);

    // --- certificates (tls) ---
    let nodeTls: NodeTls | undefined;
    if (tls) {
      const tlsDir = join(baseDir, 'tls');
      mkdirSync(tlsDir, { mode: 0o700 });
      log('openssl: CA and server certificate');
      const ca = await createCertificateAuthority(tlsDir);
      // PostgreSQL refuses a key anyone but its owner may read: the server user's, mode 600.
      const server = await issueServerCertificate(ca, tlsDir, { owner: user });
      chmodSync(ca.certFile, 0o644);
      own(ca.certFile);
      own(tlsDir);
      nodeTls = { caFile: ca.certFile, certFile: server.certFile, keyFile: server.keyFile };
    }

    // The sandbox includes the very deploy files an operator installs (copied so
    // the server user can read them wherever the checkout lives).
    const replicationConf = join(confDir, 'replication.conf');
    copyFileSync(join(deployDir, 'replication.conf'), replicationConf);
    const setupScript = join(confDir, 'replica-setup.sh');
    copyFileSync(join(deployDir, 'replica-setup.sh'), setupScript);
    chmodSync(setupScript, 0o755);
    // Without TLS a hostssl line could never match; with it, TCP is TLS only,
    // as the file advises (its host line deleted).
    const hbaSnippet = readFileSync(join(deployDir, 'pg_hba.replication.conf'), 'utf8')
      .replaceAll('REPLICA_CIDR', '127.0.0.1/32')
      .split('\n')
      .filter((line) => !line.startsWith(tls ? 'host ' : 'hostssl'))
      .join('\n');
    const hostType = tls ? 'hostssl' : 'host';
    for (const file of [replicationConf, setupScript]) own(file);

    const superuser = { name: 'postgres', password: password() };
    const replicationUser = { name: replicationUserName, password: password() };
    const ctx: NodeContext = { pgBinDir: binaries.pgBinDir, user, logDir, socketDir, superuser, database: 'postgres', settings: options.settings, tls: nodeTls };

    const nodeConf = (node: PostgresNode) => node.writeNodeConf();

    // --- primary ---
    const [primaryId, ...replicaIds] = ids;
    const primary = new PostgresNode(primaryId!, 'primary', await freePort(), join(baseDir, slotNameOf(primaryId!)), ctx);
    const pwFile = join(confDir, 'superuser.pw');
    writeFileSync(pwFile, `${superuser.password}\n`, { mode: 0o600 });
    own(pwFile);
    log(`initdb ${primary.id}`);
    await runCommand(
      join(binaries.pgBinDir, 'initdb'),
      ['-D', primary.dataDir, '-U', superuser.name, '--pwfile', pwFile, '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-instructions'],
      { user },
    );
    rmSync(pwFile);
    appendFileSync(
      join(primary.dataDir, 'postgresql.conf'),
      `\n# pgreplica sandbox\ninclude '${replicationConf}'\ninclude_if_exists 'node.conf'\n`,
    );
    writeFileSync(
      join(primary.dataDir, 'pg_hba.conf'),
      `# pgreplica sandbox\n# TYPE DATABASE USER ADDRESS METHOD\nlocal all all trust\n${hbaSnippet}\n${hostType} all all 127.0.0.1/32 scram-sha-256\n`,
    );
    nodeConf(primary);
    manifest.postgres.push({ id: primary.id, dataDir: primary.dataDir });
    writeManifest(manifest);
    log(`start ${primary.id} on port ${primary.port}`);
    await primary.start();

    // --- replicas, seeded by deploy/postgres/replica-setup.sh ---
    const replicas: PostgresNode[] = [];
    for (const id of replicaIds) replicas.push(new PostgresNode(id, 'replica', await freePort(), join(baseDir, slotNameOf(id)), ctx));
    const seed = async (replica: PostgresNode) => {
      manifest.postgres.push({ id: replica.id, dataDir: replica.dataDir });
      writeManifest(manifest);
      log(`replica-setup.sh ${replica.id}`);
      await runCommand(
        'bash',
        [setupScript, '--yes', '--create-user', primary.host, String(primary.port), replicationUser.name],
        {
          user,
          env: {
            PGPASSWORD: replicationUser.password,
            PRIMARY_ADMIN_USER: superuser.name,
            PRIMARY_ADMIN_PASSWORD: superuser.password,
            PG_BINDIR: binaries.pgBinDir,
            REPLICA_DATA_DIR: replica.dataDir,
            REPLICA_SLOT_NAME: replica.slotName,
            REPLICA_APPLICATION_NAME: replica.slotName,
            REPLICA_LOG_FILE: join(logDir, `setup-${replica.id}.log`),
            ...libpqTlsEnv(ctx),
          },
        },
      );
      nodeConf(replica);
      log(`start ${replica.id} on port ${replica.port}`);
      await replica.start();
    };
    // The first run creates the role; the rest reuse it (the script is idempotent), in parallel.
    if (replicas[0]) await seed(replicas[0]);
    await Promise.all(replicas.slice(1).map(seed));

    // --- redis ---
    let redis: RedisServer | null = null;
    let redisSentinel: RedisSentinelGroup | null = null;
    let redisCluster: RedisClusterGroup | null = null;
    const record = (port: number, pid: number) => recordRedisPid(baseDir, port, pid);
    if (redisKind === 'sentinel') {
      const redisDir = join(baseDir, 'redis');
      mkdirSync(redisDir, { mode: 0o700 });
      log('start a Redis master, its replica and three sentinels');
      redisSentinel = await startRedisSentinelGroup(binaries.redisServer, redisDir, logDir, options.redisSentinel ?? {}, record);
    } else if (redisKind === 'cluster') {
      const redisDir = join(baseDir, 'redis');
      mkdirSync(redisDir, { mode: 0o700 });
      log('start a Redis Cluster');
      redisCluster = await startRedisClusterGroup(binaries.redisServer, redisDir, logDir, options.redisCluster ?? {}, record);
    } else if (redisKind) {
      const redisDir = join(baseDir, 'redis');
      mkdirSync(redisDir, { mode: 0o700 });
      const security = nodeTls
        ? {
            tls: { caFile: nodeTls.caFile, certFile: nodeTls.certFile, keyFile: nodeTls.keyFile },
            user: { name: SANDBOX_REDIS_USER, password: password(), rules: sandboxRedisAcl(cluster) },
          }
        : {};
      const port = await freePort();
      // Every start records the pid (a restarted server has a new one), so the reaper stops the one that runs.
      redis = new RedisServer(binaries.redisServer, port, redisDir, join(logDir, 'redis.log'), security, { onStart: (pid) => recordRedisPid(baseDir, port, pid, true) });
      log(`start redis on port ${redis.port}`);
      await redis.start();
    }

    const sandbox = new Sandbox({ baseDir, binaries, primary, replicas, redis, redisSentinel, redisCluster, replicationUser, reaper, ctx });
    await sandbox.waitForStreaming();
    return sandbox;
  }
}
