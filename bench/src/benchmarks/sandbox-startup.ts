import { startSandbox } from '@pgreplica/sandbox';
import { summarize } from '../stats.js';
import { type Benchmark, withRatio } from '../types.js';

async function timeStart(replicas: number, redis: boolean): Promise<number> {
  const started = performance.now();
  const sandbox = await startSandbox({ replicas, redis });
  const elapsed = performance.now() - started;
  await sandbox.stop();
  return elapsed;
}

/**
 * Time to bring up the full sandbox (primary + 2 streaming replicas + Redis),
 * against the baseline of a lone primary (initdb + start) measured in the same
 * run, interleaved so machine noise hits both alike.
 */
export const sandboxStartup: Benchmark = {
  name: 'sandbox-startup',
  description: 'primary + 2 replicas + Redis, until both replicas stream; baseline: a lone primary',
  async run(ctx) {
    const lone: number[] = [];
    const full: number[] = [];
    for (let i = 0; i < ctx.runs; i++) {
      lone.push(await timeStart(0, false));
      full.push(await timeStart(2, true));
      ctx.log(`run ${i + 1}/${ctx.runs}: lone ${lone.at(-1)!.toFixed(0)} ms, full ${full.at(-1)!.toFixed(0)} ms`);
    }
    const baseline = { metric: 'lone primary start', summary: summarize(lone) };
    return [
      { metric: baseline.metric, unit: 'ms', summary: baseline.summary },
      withRatio('sandbox start (1+2+redis)', 'ms', summarize(full), baseline),
    ];
  },
};
