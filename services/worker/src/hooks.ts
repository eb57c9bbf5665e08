import { spawn } from 'node:child_process';

/** Outcome of a hook command. */
export interface HookResult {
  exitCode: number | null;
  output: string;
  timedOut: boolean;
}

/**
 * Runs an operator's hook command through /bin/sh with exactly the given
 * environment (build it with `hookEnv`: nothing secret) and nothing secret on
 * its command line. Never throws; a hook that runs longer than `timeoutMs` is
 * killed.
 */
export function runHook(command: string, env: Record<string, string>, timeoutMs: number): Promise<HookResult> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let timedOut = false;
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-8_192);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ exitCode: null, output: `${output}${err.message}`, timedOut });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ exitCode: code, output, timedOut });
    });
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
