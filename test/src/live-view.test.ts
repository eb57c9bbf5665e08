import { formatStatus, type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';

const row = (text: string, id: string) => text.split('\n').find((l) => l.startsWith(`${id} `)) ?? '';

// The sandbox's live table (npm start) is read from the nodes themselves:
// it must name one primary — the epoch's — and say what every other node is.
describe("npm start's live view: what the nodes say, one primary", () => {
  let sandbox: Sandbox;
  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
  });
  afterAll(async () => {
    await sandbox?.stop();
  });

  it('shows the primary accepting writes and both replicas streaming from it', async () => {
    await eventually(async () => {
      const text = await formatStatus(sandbox, { primaryId: 'p1' });
      return /primary\s+\d+\s+accepting writes/.test(row(text, 'p1')) && ['r1', 'r2'].every((id) => /streaming from p1/.test(row(text, id)));
    }, 20_000, 'both replicas streaming in the table');
  });

  it('after a promotion, the deposed writable node is a stale primary, not a second primary, and a dead one is down', async () => {
    await sandbox.node('r1').promote();
    const text = await formatStatus(sandbox, { primaryId: 'r1' });
    expect(row(text, 'r1')).toMatch(/^r1\s+primary\s+\d+\s+accepting writes/);
    expect(row(text, 'p1')).toMatch(/^p1\s+stale primary\s+\d+\s+writable, not the epoch's primary/);
    expect(row(text, 'r2')).toMatch(/not streaming from r1/);
    expect(text.split('\n').filter((l) => /^\S+\s+primary\s/.test(l))).toHaveLength(1);

    await sandbox.node('p1').kill();
    const after = await formatStatus(sandbox, { primaryId: 'r1' });
    expect(row(after, 'p1')).toMatch(/^p1\s+\?\s+\d+\s+down \(/);
    expect(after).not.toMatch(/^p1\s+(stale )?primary/m);
  });
});
