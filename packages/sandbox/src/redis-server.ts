import { type ChildProcess, spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { connect } from 'node:net';
import { SandboxError } from './errors.js';
import { isAlive, waitForExit } from './process-tree.js';

/** Sends one inline command and resolves with the first reply line. */
function redisCommand(port: number, command: string, timeoutMs = 1_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('timeout'));
    }, timeoutMs);
    let reply = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${command}\r\n`));
    socket.on('data', (chunk: string) => {
      reply += chunk;
      if (reply.includes('\r\n')) {
        clearTimeout(timer);
        socket.destroy();
        resolve(reply.slice(0, reply.indexOf('\r\n')));
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** A redis-server of the sandbox on 127.0.0.1, keeping nothing on disk. */
export class RedisServer {
  readonly host = '127.0.0.1';
  readonly port: number;
  readonly dir: string;
  readonly logFile: string;
  readonly #binary: string;
  #child: ChildProcess | undefined;
  #pid: number | undefined;

  constructor(binary: string, port: number, dir: string, logFile: string) {
    this.#binary = binary;
    this.port = port;
    this.dir = dir;
    this.logFile = logFile;
  }

  /** `redis://127.0.0.1:<port>` */
  get url(): string {
    return `redis://${this.host}:${this.port}`;
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
      this.#child = spawn(
        this.#binary,
        ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, '--daemonize', 'no', '--protected-mode', 'yes'],
        { detached: true, stdio: ['ignore', log, log] },
      );
    } finally {
      closeSync(log);
    }
    this.#child.unref();
    this.#child.on('error', () => {});
    this.#pid = this.#child.pid;
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        if ((await redisCommand(this.port, 'PING')) === '+PONG') return;
      } catch {
        // Not listening yet.
      }
      if (!this.running) throw new SandboxError('start-failed', `redis-server exited at start; see ${this.logFile}`);
      if (Date.now() > deadline) throw new SandboxError('timeout', `redis-server did not answer PING within 15 s; see ${this.logFile}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
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
