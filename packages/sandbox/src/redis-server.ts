import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import { SandboxError } from './errors.js';
import { isAlive, waitForExit } from './process-tree.js';
import { type RespValue, redisCall } from './redis-call.js';

/** TLS and ACL of a sandbox redis-server ({@link RedisServer}). */
export interface RedisServerSecurity {
  /** Serve TLS only (`--port 0 --tls-port`); clients need no certificate of their own. */
  tls?: { certFile: string; keyFile: string; caFile: string };
  /**
   * The one user that may log in (`default` is off): `rules` are ACL rules
   * after `on >password`, e.g. `~app:* &app:* +@read`.
   */
  user?: { name: string; password: string; rules: string };
}

/** How a {@link RedisServer} runs besides its address: part of a Sentinel group or a Cluster. */
export interface RedisServerMode {
  /** More `redis.conf` lines (`replicaof …`, `cluster-enabled yes`, `sentinel monitor …`). */
  config?: readonly string[];
  /** Run as a sentinel (`redis-server sentinel.conf --sentinel`), not a data server. @default false */
  sentinel?: boolean;
  /** Called with the pid after every start, so the sandbox's manifest names the process the reaper must stop. */
  onStart?: (pid: number) => void;
}

/**
 * Sends inline commands (one connection, TLS when `ca` is given) and resolves
 * with the last reply line: enough for `AUTH …` then `PING`.
 */
function redisCommand(port: number, commands: string[], ca?: string, timeoutMs = 1_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = ca ? connectTls({ host: '127.0.0.1', port, ca }) : connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('timeout'));
    }, timeoutMs);
    let reply = '';
    socket.setEncoding('utf8');
    socket.on(ca ? 'secureConnect' : 'connect', () => socket.write(commands.map((c) => `${c}\r\n`).join('')));
    socket.on('data', (chunk: string) => {
      reply += chunk;
      const lines = reply.split('\r\n');
      if (lines.length > commands.length) {
        clearTimeout(timer);
        socket.destroy();
        resolve(lines[commands.length - 1]!);
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/**
 * A redis-server of the sandbox on 127.0.0.1, keeping nothing on disk; with
 * {@link RedisServerSecurity}, TLS only and one ACL user.
 */
export class RedisServer {
  readonly host = '127.0.0.1';
  readonly port: number;
  readonly dir: string;
  readonly logFile: string;
  /** CA file clients verify the server against; null without TLS. */
  readonly caFile: string | null;
  readonly #binary: string;
  readonly #security: RedisServerSecurity;
  readonly #mode: RedisServerMode;
  #child: ChildProcess | undefined;
  #pid: number | undefined;

  constructor(binary: string, port: number, dir: string, logFile: string, security: RedisServerSecurity = {}, mode: RedisServerMode = {}) {
    this.#binary = binary;
    this.#mode = mode;
    this.port = port;
    this.dir = dir;
    this.logFile = logFile;
    this.caFile = security.tls?.caFile ?? null;
    this.#security = security;
  }

  /**
   * `redis://127.0.0.1:<port>`, or with TLS and a user
   * `rediss://<user>:<password>@127.0.0.1:<port>` (never log it: see {@link redactedUrl}).
   */
  get url(): string {
    const user = this.#security.user;
    const auth = user ? `${encodeURIComponent(user.name)}:${encodeURIComponent(user.password)}@` : '';
    return `${this.#security.tls ? 'rediss' : 'redis'}://${auth}${this.host}:${this.port}`;
  }

  /** {@link url} with the password as `***`. */
  get redactedUrl(): string {
    return this.url.replace(/:[^:@/]*@/, ':***@');
  }

  /**
   * ioredis options for this server (host, port, user, password and, with
   * TLS, `tls: { ca }` so the certificate is verified): what a client that
   * is not given {@link url} needs.
   */
  get connectOptions(): { host: string; port: number; username?: string; password?: string; tls?: { ca: string } } {
    const user = this.#security.user;
    return {
      host: this.host,
      port: this.port,
      ...(user ? { username: user.name, password: user.password } : {}),
      ...(this.caFile ? { tls: { ca: readFileSync(this.caFile, 'utf8') } } : {}),
    };
  }

  /**
   * Writes redis.conf (mode 600: it holds the password) and returns the
   * command line: secrets stay out of `ps`.
   */
  #arguments(): string[] {
    const { tls, user } = this.#security;
    const sentinel = this.#mode.sentinel === true;
    const path = join(this.dir, sentinel ? 'sentinel.conf' : 'redis.conf');
    // A sentinel rewrites its own file with what it learnt (the current master, the other sentinels): a restart keeps it.
    if (sentinel && existsSync(path)) return [path, '--sentinel'];
    const lines = [`bind ${this.host}`, ...(sentinel ? [] : ['save ""', 'appendonly no']), `dir ${this.dir}`, 'daemonize no', 'protected-mode yes'];
    if (tls) {
      lines.push('port 0', `tls-port ${this.port}`, `tls-cert-file ${tls.certFile}`, `tls-key-file ${tls.keyFile}`, `tls-ca-cert-file ${tls.caFile}`, 'tls-auth-clients no');
    } else {
      lines.push(`port ${this.port}`);
    }
    if (user) lines.push('user default off resetkeys resetchannels -@all', `user ${user.name} reset on >${user.password} ${user.rules}`);
    lines.push(...(this.#mode.config ?? []));
    writeFileSync(path, `${lines.join('\n')}\n`, { mode: 0o600 });
    return sentinel ? [path, '--sentinel'] : [path];
  }

  /** Pid of the server, or undefined when it is not running. */
  get pid(): number | undefined {
    return this.#pid !== undefined && isAlive(this.#pid) ? this.#pid : undefined;
  }

  get running(): boolean {
    return this.pid !== undefined;
  }

  /** Starts the server and waits for PONG. No-op when it runs. */
  async start(): Promise<void> {
    if (this.running) return;
    const log = openSync(this.logFile, 'a');
    try {
      // Own process group: a Ctrl-C aimed at the owner does not reach it; the owner stops it in order.
      this.#child = spawn(this.#binary, this.#arguments(), { detached: true, stdio: ['ignore', log, log] });
    } finally {
      closeSync(log);
    }
    this.#child.unref();
    this.#child.on('error', () => {});
    this.#pid = this.#child.pid;
    if (this.#pid !== undefined) this.#mode.onStart?.(this.#pid);
    const user = this.#security.user;
    const ping = user ? [`AUTH ${user.name} ${user.password}`, 'PING'] : ['PING'];
    const ca = this.caFile ? readFileSync(this.caFile, 'utf8') : undefined;
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        if ((await redisCommand(this.port, ping, ca)) === '+PONG') return;
      } catch {
        // Not listening yet.
      }
      if (!this.running) throw new SandboxError('start-failed', `redis-server exited at start; see ${this.logFile}`);
      if (Date.now() > deadline) throw new SandboxError('timeout', `redis-server did not answer PING within 15 s; see ${this.logFile}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /**
   * Sends one command and resolves with its reply: plain TCP without AUTH
   * (the sandbox's Sentinel and Cluster servers), not for a TLS server.
   * @throws RedisReplyError for an error reply
   */
  call(...args: (string | number)[]): Promise<RespValue> {
    return redisCall(this.port, args);
  }

  /** Stops the server (SIGTERM, then SIGKILL after 10 s). */
  async stop(): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) return;
    process.kill(pid, 'SIGCONT');
    process.kill(pid, 'SIGTERM');
    try {
      await waitForExit([pid], 10_000);
    } catch {
      process.kill(pid, 'SIGKILL');
      await waitForExit([pid], 5_000);
    }
  }

  /** SIGKILL: Redis dies at once. */
  async kill(): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) return;
    process.kill(pid, 'SIGKILL');
    await waitForExit([pid], 5_000);
  }

  /** SIGSTOP: Redis hangs. */
  pause(): void {
    if (this.#pid !== undefined) process.kill(this.#pid, 'SIGSTOP');
  }

  /** SIGCONT: undoes {@link pause}. */
  resume(): void {
    if (this.#pid !== undefined) process.kill(this.#pid, 'SIGCONT');
  }

  /** Stops and starts the server again (an empty Redis: it keeps nothing on disk). */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }
}
