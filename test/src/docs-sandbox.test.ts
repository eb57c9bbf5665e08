import type { Monitor } from '@pgreplica/monitor';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, writeConfig } from './cli-fixture.js';
import { eventually } from './helpers.js';
import { allCodeBlocks, shellCommands, where } from './markdown-blocks.js';
import { monitorConfig, monitorEnv, startMonitor } from './monitor-fixture.js';

// The docs' SQL and their read-only (or reversible) pgreplica commands, run
// against a local primary, a replica, Redis and a monitor. The static checks
// are in docs-snippets.test.ts.
const blocks = allCodeBlocks();
/** pgreplica commands safe to run as written: they change nothing, or undo each other (pause, resume). */
const RUNNABLE = new Set(['status', 'events', 'slots', 'pause', 'resume']);

const commands = blocks
  .filter((b) => b.lang === 'sh' || b.lang === 'bash')
  .flatMap((b) => shellCommands(b.code).map((c) => ({ block: b, words: c.words })))
  .filter(({ words }) => words[0] === 'pgreplica')
  .map(({ block, words }) => {
    const args = words.slice(1);
    while (args[0] === '--config' || args[0] === '-c') args.splice(0, 2);
    return { block, args };
  })
  .filter(({ args }) => RUNNABLE.has(args[0] ?? '') && !args.includes('--cleanup') && !args.some((a) => a.includes('<')));

describe('the docs against a local cluster', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let configPath: string;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 1 });
    monitor = await startMonitor(sandbox);
    configPath = writeConfig(sandbox.baseDir, 'docs.json', monitorConfig(sandbox));
    await eventually(() => monitor.isLeader && monitor.topology?.nodes.every((n) => n.status === 'healthy') === true, 20_000, 'a leader monitor, every node healthy');
  });
  afterAll(async () => {
    await monitor?.close();
    await sandbox?.stop();
  });

  it('runs every SQL block on the primary or a replica, as tagged', async () => {
    const sql = blocks.filter((b) => b.lang === 'sql');
    expect(sql.filter((b) => b.tags[0] === 'primary').length).toBeGreaterThanOrEqual(2);
    expect(sql.filter((b) => b.tags[0] === 'replica').length).toBeGreaterThanOrEqual(1);
    const run = (node: Sandbox['primary'], b: (typeof sql)[number]) =>
      node.query(b.code).catch((err: unknown) => {
        throw new Error(`${where(b)}: ${(err as Error).message}`, { cause: err });
      });
    for (const b of sql.filter((x) => x.tags[0] === 'primary')) await run(sandbox.primary, b);
    // The monitor's tables reach the replica by streaming.
    await sandbox.waitForReplay();
    for (const b of sql.filter((x) => x.tags[0] === 'replica')) await run(sandbox.replicas[0]!, b);
  });

  it('runs every read-only pgreplica command of the docs (status, events, slots, pause, resume)', async () => {
    expect(commands.map((c) => c.args[0])).toEqual(expect.arrayContaining(['status', 'events', 'pause', 'resume']));
    expect(commands.length).toBeGreaterThanOrEqual(6);
    for (const { block, args } of commands) {
      const result = await cli(['--config', configPath, ...args], monitorEnv(sandbox));
      expect({ at: where(block), args: args.join(' '), code: result.code, err: result.err }).toEqual({ at: where(block), args: args.join(' '), code: 0, err: '' });
    }
  });
});
