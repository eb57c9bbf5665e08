/**
 * One PostgreSQL server of a sandbox: its settings, start, stop, kill,
 * pause, promote, rejoin (pg_rewind) and queries. Over 300 lines because it
 * is the whole life cycle of a server, each operation a few lines.
 */
import { chownSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { SandboxError } from './errors.js';
import { runCommand, type ServerUser } from './exec.js';
import { postmasterPid } from './manifest.js';
import { signalTree, waitForExit } from './process-tree.js';

/** The last lines of a server log, for an error message (the sandbox directory may be gone by the time someone looks). */
function logTail(file: string, lines = 6): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join(' | ');
  } catch {
    return `(no log at ${file})`;
  }
}

/** Role a sandbox node was created with (a test may promote a replica later). */
export type SandboxNodeRole = 'primary' | 'replica';

/** What every node of one sandbox shares. */
export interface NodeContext {
  pgBinDir: string;
  user: ServerUser;
  logDir: string;
  /** unix_socket_directories of every node. */
  socketDir: string;
  /** Superuser name and password (the password is the same on every node). */
  superuser: { name: string; password: string };
  database: string;
  /** Extra postgresql.conf settings of every node (`SandboxOptions.settings`). */
  settings?: Record<string, string | number | boolean> | undefined;
  /** TLS of every node (`SandboxOptions.tls`): the server's certificate and key, and the CA clients verify it with. */
  tls?: NodeTls | undefined;
}

/** Certificate files of the nodes of a TLS sandbox. */
export interface NodeTls {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/**
 * libpq environment that makes psql, pg_basebackup and pg_rewind verify the
 * server (`sslmode=verify-full`: CA and host name); empty without TLS.
 */
export function libpqTlsEnv(ctx: Pick<NodeContext, 'tls'>): Record<string, string> {
  return ctx.tls ? { PGSSLMODE: 'verify-full', PGSSLROOTCERT: ctx.tls.caFile } : {};
}

/** node-postgres `ssl` that verifies the server against the sandbox's CA; undefined without TLS. */
export function clientSsl(ctx: Pick<NodeContext, 'tls'>): pg.ClientConfig['ssl'] {
  return ctx.tls ? { ca: readFileSync(ctx.tls.caFile, 'utf8'), rejectUnauthorized: true } : undefined;
}

function quoteConf(value: string | number | boolean): string {
  return typeof value === 'string' ? `'${value.replaceAll("'", "''")}'` : String(value);
}

/**
 * The replication slot name of a node id: lower case, anything a slot name
 * cannot hold as "_" (the same rule as pgreplica's config default).
 */
export function slotNameOf(id: string): string {
  return id.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 63);
}

/** How to stop a node: `fast` rolls back sessions, `immediate` skips the shutdown checkpoint. */
export type StopMode = 'smart' | 'fast' | 'immediate';

/** One PostgreSQL server of the sandbox, on 127.0.0.1 and its own port. */
export class PostgresNode {
  readonly id: string;
  readonly host = '127.0.0.1';
  readonly port: number;
  readonly dataDir: string;
  readonly logFile: string;
  /** Role the node was created with. */
  readonly initialRole: SandboxNodeRole;
  /** The physical slot it streams through as a replica (and its application_name). */
  readonly slotName: string;
  readonly #ctx: NodeContext;

  constructor(id: string, initialRole: SandboxNodeRole, port: number, dataDir: string, ctx: NodeContext) {
    this.id = id;
    this.slotName = slotNameOf(id);
    this.initialRole = initialRole;
    this.port = port;
    this.dataDir = dataDir;
    this.logFile = join(ctx.logDir, `${id}.log`);
    this.#ctx = ctx;
  }

  /**
   * Superuser connection URL, password included (never log it; see {@link redactedUrl});
   * with TLS, `sslmode=verify-full` and the CA (`sslrootcert`), which psql and node-postgres both read.
   */
  get url(): string {
    const { name, password } = this.#ctx.superuser;
    return `postgres://${encodeURIComponent(name)}:${encodeURIComponent(password)}@${this.host}:${this.port}/${this.#ctx.database}${this.#urlTls()}`;
  }

  /** The connection URL with the password replaced by `***`, for logs and status output. */
  get redactedUrl(): string {
    return `postgres://${encodeURIComponent(this.#ctx.superuser.name)}:***@${this.host}:${this.port}/${this.#ctx.database}${this.#urlTls()}`;
  }

  #urlTls(): string {
    return this.#ctx.tls ? `?sslmode=verify-full&sslrootcert=${encodeURIComponent(this.#ctx.tls.caFile)}` : '';
  }

  /** node-postgres client settings for this node. */
  get connectionConfig(): pg.ClientConfig {
    return {
      host: this.host,
      port: this.port,
      user: this.#ctx.superuser.name,
      password: this.#ctx.superuser.password,
      database: this.#ctx.database,
      connectionTimeoutMillis: 5_000,
      ...(this.#ctx.tls ? { ssl: clientSsl(this.#ctx) } : {}),
    };
  }

  /** Pid of the postmaster, or undefined when the server is not running. */
  get pid(): number | undefined {
    return postmasterPid(this.dataDir);
  }

  /** Whether a postmaster runs on this data directory (it may be paused). */
  get running(): boolean {
    return this.pid !== undefined;
  }

  #pgctl(args: string[], timeoutMs = 120_000) {
    return runCommand(join(this.#ctx.pgBinDir, 'pg_ctl'), args, { user: this.#ctx.user, timeoutMs });
  }

  /** Starts the server and waits until it accepts connections. No-op when it runs. */
  async start(): Promise<void> {
    if (this.running) return;
    try {
      await this.#pgctl(['-D', this.dataDir, '-l', this.logFile, '-w', '-t', '90', 'start'], 100_000);
    } catch (err) {
      throw new SandboxError('start-failed', `node ${this.id} did not start: ${logTail(this.logFile)}`, { cause: err });
    }
  }

  /** Stops the server cleanly (waits for it). No-op when it is not running. */
  async stop(mode: StopMode = 'fast'): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) return;
    // A paused server cannot shut down.
    signalTree(pid, 'SIGCONT');
    try {
      await this.#pgctl(['-D', this.dataDir, '-m', mode, '-w', '-t', '60', 'stop'], 70_000);
    } catch (err) {
      if (this.running) throw new SandboxError('command-failed', `node ${this.id} did not stop`, { cause: err });
    }
  }

  /** Crashes the node: SIGKILL to the postmaster and all its backends at once, like a machine dying. */
  async kill(): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) return;
    signalTree(pid, 'SIGCONT');
    const pids = signalTree(pid, 'SIGKILL');
    await waitForExit(pids, 10_000);
    // A killed postmaster can linger as a zombie until something reaps it, and
    // PostgreSQL would take that pid as a running server. Its processes are
    // gone (checked above), so the lock file is stale, as after a real crash.
    rmSync(join(this.dataDir, 'postmaster.pid'), { force: true });
    rmSync(join(this.#ctx.socketDir, `.s.PGSQL.${this.port}.lock`), { force: true });
  }

  /** Freezes the node (SIGSTOP to every process): connections hang, nothing answers — a hung server. */
  pause(): void {
    const pid = this.pid;
    if (pid === undefined) throw new SandboxError('invalid-option', `pause(): node ${this.id} is not running`);
    signalTree(pid, 'SIGSTOP');
  }

  /** Undoes {@link pause}. */
  resume(): void {
    const pid = this.pid;
    if (pid === undefined) throw new SandboxError('invalid-option', `resume(): node ${this.id} is not running`);
    signalTree(pid, 'SIGCONT');
  }

  /** Stops (or, when it was killed, just starts) and starts the node again. */
  async restart(): Promise<void> {
    await this.stop('fast');
    await this.start();
  }

  /** Promotes a replica (`pg_ctl promote -w`): it leaves recovery and takes writes. */
  async promote(): Promise<void> {
    await this.#pgctl(['-D', this.dataDir, '-w', '-t', '60', 'promote'], 70_000);
  }

  /** Runs one statement on a short-lived connection and returns its rows. */
  async query<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<R[]> {
    const client = new pg.Client(this.connectionConfig);
    client.on('error', () => {});
    await client.connect();
    try {
      return (await client.query<R>(sql, params)).rows;
    } finally {
      await client.end().catch(() => {});
    }
  }

  /**
   * Sets `recovery_min_apply_delay` on a replica (0 turns it off): it receives
   * WAL at once but replays each commit only after the delay — deterministic lag.
   */
  async setApplyDelay(delayMs: number): Promise<void> {
    if (!Number.isInteger(delayMs) || delayMs < 0) {
      throw new SandboxError('invalid-option', `setApplyDelay(): delayMs must be a non-negative integer, got ${delayMs}`);
    }
    await this.query(`ALTER SYSTEM SET recovery_min_apply_delay = '${delayMs}ms'`);
    await this.query('SELECT pg_reload_conf()');
  }

  /** Pauses WAL replay on a replica (`pg_wal_replay_pause()`): it keeps receiving, stops applying. */
  async pauseReplay(): Promise<void> {
    await this.query('SELECT pg_wal_replay_pause()');
  }

  /** Resumes WAL replay on a replica. */
  async resumeReplay(): Promise<void> {
    await this.query('SELECT pg_wal_replay_resume()');
  }

  /**
   * Makes this (old primary) a replica of `primary`: clean stop, `pg_rewind`
   * against the new primary (a no-op when not needed), standby.signal,
   * primary_conninfo and slot in postgresql.auto.conf (and any read-only
   * fencing setting removed), start. What a switchover's rejoin hook does.
   */
  /**
   * Writes the node's own settings (port, socket directory, …) to node.conf in
   * its data directory, which postgresql.conf includes.
   */
  writeNodeConf(): void {
    const settings: Record<string, string | number | boolean> = {
      port: this.port,
      listen_addresses: '127.0.0.1',
      unix_socket_directories: this.#ctx.socketDir,
      cluster_name: `pgreplica-${this.id}`,
      shared_buffers: '32MB',
      max_connections: 100,
      // A sandbox survives process crashes, not power loss: skip fsync for speed.
      fsync: 'off',
      max_wal_size: '256MB',
      wal_keep_size: '64MB',
      max_slot_wal_keep_size: '1GB',
      log_line_prefix: '%m [%p] %q%u@%d ',
      ...(this.#ctx.tls ? { ssl: 'on', ssl_cert_file: this.#ctx.tls.certFile, ssl_key_file: this.#ctx.tls.keyFile } : {}),
      ...this.#ctx.settings,
    };
    const text = `# Written by the pgreplica sandbox for node ${this.id}.\n${Object.entries(settings)
      .map(([k, v]) => `${k} = ${quoteConf(v)}`)
      .join('\n')}\n`;
    const path = join(this.dataDir, 'node.conf');
    writeFileSync(path, text, { mode: 0o600 });
    if (this.#ctx.user.switchUser) chownSync(path, this.#ctx.user.uid, this.#ctx.user.gid);
  }

  /**
   * Writes the replication role's passfile next to the data directory
   * (`<dataDir>.pgpass`, mode 600, the server's user), where replica-setup.sh
   * puts it; returns its path.
   */
  writeReplicationPassfile(replication: { user: string; password: string }): string {
    const path = `${this.dataDir}.pgpass`;
    const field = (v: string) => v.replaceAll('\\', '\\\\').replaceAll(':', '\\:');
    writeFileSync(path, `*:*:*:${field(replication.user)}:${field(replication.password)}\n`, { mode: 0o600 });
    if (this.#ctx.user.switchUser) chownSync(path, this.#ctx.user.uid, this.#ctx.user.gid);
    return path;
  }

  async rejoin(primary: { host: string; port: number }, replication: { user: string; password: string }, slotName = this.slotName): Promise<void> {
    await this.stop('fast');
    const { name, password } = this.#ctx.superuser;
    await runCommand(
      join(this.#ctx.pgBinDir, 'pg_rewind'),
      ['--target-pgdata', this.dataDir, '--source-server', `host=${primary.host} port=${primary.port} user=${name} dbname=${this.#ctx.database}`],
      { user: this.#ctx.user, env: { PGPASSWORD: password, ...libpqTlsEnv(this.#ctx) }, timeoutMs: 120_000 },
    );
    // pg_rewind copied the source's files, its node.conf (its port) included: this node's own again.
    this.writeNodeConf();
    const auto = join(this.dataDir, 'postgresql.auto.conf');
    const kept = readFileSync(auto, 'utf8')
      .split('\n')
      .filter((line) => !/^\s*(primary_conninfo|primary_slot_name|default_transaction_read_only|synchronous_standby_names|recovery_target_timeline)\s*=/.test(line));
    const tls = this.#ctx.tls ? ` sslmode=verify-full sslrootcert=${this.#ctx.tls.caFile}` : '';
    // The password goes in a passfile next to the data directory, as replica-setup.sh does, never into primary_conninfo.
    const passfile = this.writeReplicationPassfile(replication);
    const conninfo = `host=${primary.host} port=${primary.port} user=${replication.user} passfile=${passfile} application_name=${this.slotName}${tls}`;
    kept.push(`primary_conninfo = '${conninfo.replaceAll("'", "''")}'`, `primary_slot_name = '${slotName}'`, "recovery_target_timeline = 'latest'", '');
    writeFileSync(auto, kept.join('\n'));
    writeFileSync(join(this.dataDir, 'standby.signal'), '');
    if (this.#ctx.user.switchUser) {
      chownSync(auto, this.#ctx.user.uid, this.#ctx.user.gid);
      chownSync(join(this.dataDir, 'standby.signal'), this.#ctx.user.uid, this.#ctx.user.gid);
    }
    await this.start();
  }

  /** Whether the server is in recovery (a replica). */
  async isInRecovery(): Promise<boolean> {
    const [row] = await this.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    return row!.r;
  }
}
