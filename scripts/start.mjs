#!/usr/bin/env node
// `npm start`: builds the workspace, then runs the local cluster
// (scripts/local-cluster.mjs: sandbox + monitor + worker) in the foreground
// until Ctrl-C. `npm start -- --replicas 3` passes options on. If npm (or the
// shell it runs us in) is killed, the cluster is stopped too.
import { spawn, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startingAncestors, watchAncestors } from './lib/lifeline.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const env = { ...process.env, TURBO_TELEMETRY_DISABLED: '1', DO_NOT_TRACK: '1' };

const build = spawnSync(join(root, 'node_modules', '.bin', 'turbo'), ['run', 'build', '--output-logs=errors-only'], {
  cwd: root,
  env,
  stdio: 'inherit',
});
if (build.status !== 0) process.exit(build.status ?? 1);

const child = spawn(process.execPath, [join(root, 'scripts', 'local-cluster.mjs'), ...process.argv.slice(2)], {
  cwd: root,
  env,
  stdio: 'inherit',
});
// The terminal delivers Ctrl-C to the child too; forward what it would not get (e.g. a SIGTERM to us) and wait for it.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    if (signal !== 'SIGINT') child.kill(signal);
  });
}
// npm killed (even with -9): stop the cluster rather than leave it running with nobody to Ctrl-C it.
watchAncestors(startingAncestors(), (gone) => {
  process.stderr.write(`[start] ${gone.command} (pid ${gone.pid}) is gone: stopping the local cluster\n`);
  child.kill('SIGTERM');
});
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
