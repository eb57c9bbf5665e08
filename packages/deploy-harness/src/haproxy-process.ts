import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type HaproxyNode, READ_ONLY_LISTENER, READ_WRITE_LISTENER, renderDeployHaproxyConfig } from './haproxy-config.js';
import { requireTool } from './tools.js';

/** Where {@link HaproxyProcess.start} points deploy/haproxy/haproxy.cfg. */
export interface HaproxyProcessOptions {
  nodes: readonly HaproxyNode[];
  /** The monitor's HTTP API. */
  monitor: { host: string; port: number };
  readWritePort: number;
  readOnlyPort: number;
  /** How long HAProxy may take to answer on its admin socket. @default 10_000 */
  startTimeoutMs?: number;
}

/** One server of one listener, from HAProxy's `show stat`. */
export interface ServerState {
  listener: string;
  server: string;
  /** `UP`, `DOWN`, `UP 1/2` (going down), `DOWN 1/2` (going up), `MAINT`, `no check`. */
  status: string;
  /** Connections it took since HAProxy started. */
  sessionsTotal: number;
  /** Connections open now. */
  sessionsCurrent: number;
}

/**
 * A real `haproxy` (Debian's package) running deploy/haproxy/haproxy.cfg,
 * rendered for local ports ({@link renderDeployHaproxyConfig}), in the
 * foreground as a child process, with its admin socket in a temporary
 * directory. `close()` stops it and removes the directory.
 */
export class HaproxyProcess implements AsyncDisposable {
  readonly readWritePort: number;
  readonly readOnlyPort: number;
  readonly configPath: string;
  readonly #dir: string;
  readonly #socket: string;
  readonly #child: ChildProcess;
  #output = '';
  #closing: Promise<void> | undefined;

  private constructor(dir: string, options: HaproxyProcessOptions) {
    this.#dir = dir;
    this.#socket = join(dir, 'admin.sock');
    this.readWritePort = options.readWritePort;
    this.readOnlyPort = options.readOnlyPort;
    this.configPath = join(dir, 'haproxy.cfg');
    const config = renderDeployHaproxyConfig({
      nodes: options.nodes,
      monitor: options.monitor,
      ports: { [READ_WRITE_LISTENER]: options.readWritePort, [READ_ONLY_LISTENER]: options.readOnlyPort },
      statsSocket: this.#socket,
    });
    writeFileSync(this.configPath, `${config}\n`);
    this.#child = spawn(requireTool('haproxy', 'haproxy'), ['-db', '-f', this.configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (chunk: Buffer) => {
      this.#output = (this.#output + chunk.toString()).slice(-4_000);
    };
    this.#child.stdout?.on('data', keep);
    this.#child.stderr?.on('data', keep);
  }

  /**
   * Starts HAProxy and waits for its admin socket.
   * @throws ToolMissingError when haproxy is not installed; Error when it exits or does not answer
   */
  static async start(options: HaproxyProcessOptions): Promise<HaproxyProcess> {
    const dir = mkdtempSync(join(tmpdir(), 'pgreplica-haproxy-'));
    let haproxy: HaproxyProcess;
    try {
      haproxy = new HaproxyProcess(dir, options);
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    const deadline = Date.now() + (options.startTimeoutMs ?? 10_000);
    for (;;) {
      if (haproxy.#child.exitCode !== null || haproxy.#child.signalCode !== null) {
        await haproxy.close();
        throw new Error(`haproxy exited at start (${haproxy.#child.exitCode ?? haproxy.#child.signalCode}): ${haproxy.#output.trim()}`);
      }
      try {
        await haproxy.servers();
        return haproxy;
      } catch (err) {
        if (Date.now() > deadline) {
          await haproxy.close();
          throw new Error(`haproxy does not answer on its admin socket: ${haproxy.#output.trim()}`, { cause: err });
        }
        await sleep(50);
      }
    }
  }

  /** What HAProxy printed last (warnings, alerts). */
  get output(): string {
    return this.#output;
  }

  /** Runs one command on the admin socket and returns its answer. */
  command(line: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = connect(this.#socket);
      let answer = '';
      socket.setTimeout(5_000, () => socket.destroy(new Error(`no answer to "${line}" on the admin socket`)));
      socket.on('connect', () => socket.end(`${line}\n`));
      socket.on('data', (chunk) => {
        answer += chunk.toString();
      });
      socket.on('error', reject);
      socket.on('close', () => resolve(answer));
    });
  }

  /** Every server of every listener (`show stat`). */
  async servers(): Promise<ServerState[]> {
    const [header, ...rows] = (await this.command('show stat')).trim().split('\n');
    if (!header?.startsWith('# ')) throw new Error(`unexpected answer to show stat: ${header}`);
    const columns = header.slice(2).split(',');
    const at = (name: string) => columns.indexOf(name);
    return rows
      .map((row) => row.split(','))
      .filter((cells) => cells[at('svname')] !== 'FRONTEND' && cells[at('svname')] !== 'BACKEND')
      .map((cells) => ({
        listener: cells[at('pxname')] ?? '',
        server: cells[at('svname')] ?? '',
        status: cells[at('status')] ?? '',
        sessionsTotal: Number(cells[at('stot')] ?? 0),
        sessionsCurrent: Number(cells[at('scur')] ?? 0),
      }));
  }

  /**
   * Polls `show stat` until `check` holds.
   * @throws Error after `timeoutMs`, with the last states
   */
  async waitFor(check: (servers: ServerState[]) => boolean, timeoutMs: number, what: string): Promise<ServerState[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const servers = await this.servers();
      if (check(servers)) return servers;
      if (Date.now() > deadline) {
        throw new Error(`haproxy: no ${what} within ${timeoutMs} ms; servers: ${servers.map((s) => `${s.listener}/${s.server}=${s.status}`).join(', ')}`);
      }
      await sleep(50);
    }
  }

  /** Stops HAProxy (SIGTERM, then SIGKILL after 5 s) and removes its directory. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const child = this.#child;
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(this.#dir, { recursive: true, force: true });
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
