import type { Monitor } from '@pgreplica/monitor';
import type { Router } from '@pgreplica/router-client';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BusRecorder, startMonitor } from './monitor-fixture.js';
import { portMap, routerSees, startRouter } from './router-fixture.js';
import { clusterConfig, startWorker } from './worker-fixture.js';

// Found by the chaos suite (seed 2 of its first run: stop-primary): a write
// whose connection to a hung primary was still being opened when the router
// learned of a failover ran, once the old primary woke up, on it — fenced
// for the epoch the router knew when the write began, which the deposed
// node (not fenced yet by the worker) still records. Acknowledged, then lost.
describe('issue 8: a write connecting to a hung primary across a failover', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let worker: RemediationWorker;
  let bus: BusRecorder;
  let db: Router;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 1 });
    const config = clusterConfig(sandbox);
    monitor = await startMonitor(sandbox, { failover: config.failover, worker: config.worker });
    worker = await startWorker(sandbox);
    bus = await BusRecorder.start(sandbox.redis!.url);
    // A long connect timeout: the connection attempt outlives the failover.
    db = await startRouter(sandbox, { maxWritePauseMs: 60_000, pool: { max: 2, connectionTimeoutMillis: 60_000 } });
    await routerSees(db, (r) => r.getTopology().topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
    await sandbox.primary.query('CREATE TABLE ledger (id int PRIMARY KEY)');
    await sandbox.waitForReplay();
  });
  afterAll(async () => {
    if (sandbox?.primary.running) sandbox.primary.resume();
    await db?.close();
    await worker?.close();
    await monitor?.close();
    await bus?.close();
    await sandbox?.stop();
  });

  it('is not acknowledged by the deposed primary', async () => {
    sandbox.primary.pause();
    // The router has no connection to p1 yet: this write opens one, which hangs.
    const write = db.write<{ port: number }>('INSERT INTO ledger (id) VALUES (1) RETURNING inet_server_port() AS port').then(
      (r) => portMap(sandbox).get(r.rows[0]!.port),
      (err: Error) => `failed: ${err.message}`,
    );
    await bus.waitFor((e) => e.type === 'primary.changed', 60_000, 'primary.changed');
    await routerSees(db, (r) => r.getTopology().topology?.epoch === 2, 15_000, 'the router on epoch 2');
    // The old primary wakes up before the worker could fence it.
    sandbox.primary.resume();
    const outcome = await write;
    expect(outcome).not.toBe('p1');
    if (outcome === 'r1') expect(await sandbox.node('r1').query('SELECT id FROM ledger')).toEqual([{ id: 1 }]);
  });
});
