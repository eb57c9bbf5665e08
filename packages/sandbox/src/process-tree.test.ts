import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { isAlive, processTree, signalTree, waitForExit } from './process-tree.js';

describe('process tree', () => {
  it('finds and kills a process and its grandchildren', async () => {
    // sh → sleep (a grandchild of this process, a child of sh).
    const shell = spawn('sh', ['-c', 'sleep 30 & sleep 30 & wait'], { stdio: 'ignore' });
    const exited = new Promise((resolve) => shell.on('exit', resolve));
    let tree: number[] = [];
    for (let i = 0; i < 100 && tree.length < 3; i++) {
      tree = processTree(shell.pid!);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(tree[0]).toBe(shell.pid);
    expect(tree).toHaveLength(3);

    const signalled = signalTree(shell.pid!, 'SIGKILL');
    expect(signalled.sort()).toEqual(tree.sort());
    await exited;
    await waitForExit(tree, 5_000);
    expect(tree.some(isAlive)).toBe(false);
  });

  it('reports a missing process as not alive', () => {
    expect(isAlive(2 ** 22 + 1)).toBe(false);
    expect(processTree(2 ** 22 + 1)).toEqual([]);
  });
});
