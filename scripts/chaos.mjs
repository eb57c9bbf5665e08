#!/usr/bin/env node
// npm run chaos -- [--seeds N] [--from N] [--seed N]: builds the workspace,
// then runs the randomized fault suite (test/src/chaos.test.ts) over seeds
// from..from+N-1 (default 1..200), or the one seed --seed N to replay it.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { seeds: { type: 'string', default: '200' }, from: { type: 'string', default: '1' }, seed: { type: 'string' } } });
const count = Number(values.seeds);
const from = Number(values.from);
if (!Number.isInteger(count) || count < 1 || !Number.isInteger(from) || (values.seed !== undefined && !/^\d+$/.test(values.seed))) {
  process.stderr.write('usage: npm run chaos -- [--seeds N] [--from N] [--seed N]\n');
  process.exit(2);
}
const root = fileURLToPath(new URL('..', import.meta.url));
const env = { ...process.env, TURBO_TELEMETRY_DISABLED: '1', DO_NOT_TRACK: '1', CHAOS_SEEDS: values.seed ?? `${from}..${from + count - 1}` };
const build = spawnSync('npx', ['turbo', 'run', 'build', '--output-logs=errors-only'], { cwd: root, env, stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
const run = spawnSync('npx', ['vitest', 'run', 'src/chaos.test.ts'], { cwd: `${root}test`, env, stdio: 'inherit' });
process.exit(run.status ?? 1);
