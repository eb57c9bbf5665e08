import { spawn } from 'node:child_process';

/** Outcome of a hook command. */
export interface HookResult {
  exitCode: number | null;
  output: string;
  timedOut: boolean;
  /** Stopped because `signal` aborted (the worker is shutting down). */
  aborted: boolean;
}

/**
 * Runs an operator's hook command through /bin/sh with exactly the given
 * environment (build it with `hookEnv`: nothing secret) and nothing secret on
 * its command line. Never throws. The hook runs in its own process group, and
 * the whole group is killed when it runs longer than `timeoutMs` or when
 * `signal` aborts: a shell's children (a `sleep`, an ssh) would otherwise
 * outlive it and keep its output pipes, and so the caller, waiting.
 */
export function runHook(command: string, env: Record<string, string>, timeoutMs: number, signal?: AbortSignal): Promise<HookResult> {
  if (signal?.aborted) return Promise.resolve({ exitCode: null, output: 'not run: the worker is shutting down', timedOut: false, aborted: true });
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    let timedOut = false;
    let aborted = false;
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-8_192);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const killGroup = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL'); // the group is gone already, or never formed
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, timeoutMs);
    const onAbort = () => {
      aborted = true;
      killGroup();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const done = (exitCode: number | null, extra = '') => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve({ exitCode, output: `${output}${extra}`, timedOut, aborted });
    };
    child.on('error', (err) => done(null, err.message));
    child.on('close', (code) => done(code));
  });
}

/** Environment describing a node for a hook. */
export function nodeEnv(prefix: 'NODE' | 'PRIMARY', node: { id: string; host: string; port: number }): Record<string, string> {
  return {
    [`PGREPLICA_${prefix}_ID`]: node.id,
    [`PGREPLICA_${prefix}_HOST`]: node.host,
    [`PGREPLICA_${prefix}_PORT`]: String(node.port),
  };
}
