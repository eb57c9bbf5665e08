import { execFile, execFileSync } from 'node:child_process';
import { userInfo } from 'node:os';
import { SandboxError } from './errors.js';

/** OS user the servers run as: `postgres` when we are root (PostgreSQL refuses root), else ourselves. */
export interface ServerUser {
  /** Whether commands go through `runuser -u <name> --`. */
  switchUser: boolean;
  name: string;
  uid: number;
  gid: number;
}

/** Resolves the server user; as root that is `postgres`, which must exist. */
export function resolveServerUser(name = 'postgres'): ServerUser {
  if (process.getuid?.() !== 0) {
    const me = userInfo();
    return { switchUser: false, name: me.username, uid: me.uid, gid: me.gid };
  }
  try {
    const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
    return { switchUser: true, name, uid, gid };
  } catch (err) {
    throw new SandboxError(
      'binary-not-found',
      `running as root, the servers must run as the "${name}" OS user, which does not exist: install PostgreSQL from Debian's packages (it creates the user) or create it`,
      { cause: err },
    );
  }
}

/** Output of a finished command. */
export interface CommandResult {
  stdout: string;
  stderr: string;
}

/** Options of {@link runCommand}. */
export interface RunOptions {
  /** Run as this user (via runuser when it differs from us). */
  user?: ServerUser;
  /** Extra environment; secrets go here, never in `args`, so they do not show in ps. */
  env?: NodeJS.ProcessEnv;
  /** @default 120_000 */
  timeoutMs?: number;
  cwd?: string;
}

/** A command that exited non-zero; carries its exit code and output. */
export class CommandError extends SandboxError {
  readonly exitCode: number | null;
  readonly stdout: string;
  readonly stderr: string;

  constructor(command: string, exitCode: number | null, stdout: string, stderr: string, cause?: unknown) {
    super('command-failed', `${command} failed (exit ${exitCode ?? 'signal'}): ${stderr.trim().split('\n').slice(-5).join(' | ')}`, {
      cause,
    });
    this.exitCode = exitCode;
    this.stdout = stdout;
    this.stderr = stderr;
  }
}

/** Runs a program to completion and returns its output; rejects with {@link CommandError}. */
export function runCommand(program: string, args: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
  const [file, argv] = options.user?.switchUser ? ['runuser', ['-u', options.user.name, '--', program, ...args]] : [program, [...args]];
  return new Promise((resolve, reject) => {
    execFile(
      file,
      argv,
      {
        env: { ...process.env, ...options.env },
        timeout: options.timeoutMs ?? 120_000,
        cwd: options.cwd ?? '/',
        maxBuffer: 16 * 1024 * 1024,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        if (err) {
          const code = typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === 'number' ? (err as { code: number }).code : null;
          reject(new CommandError(`${program.split('/').pop()} ${args[0] ?? ''}`.trim(), code, stdout, stderr, err));
        } else {
          resolve({ stdout, stderr });
        }
      },
    );
  });
}
