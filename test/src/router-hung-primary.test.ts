import type { Monitor } from '@pgreplica/monitor';
import type { Router } from '@pgreplica/router-client';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';
import { startMonitor } from './monitor-fixture.js';
import { startRouter } from './router-fixture.js';
import { clusterConfig, startWorker } from './worker-fixture.js';

const CONNECT_TIMEOUT_MS = 60_000;

// A write that starts while the primary hangs opens a connection that the
// hung server never completes. When the failover moves the epoch on, the
// write must start over on the new primary at once — not wait out the
// connect timeout on the deposed node (before: the whole connectionTimeoutMillis).
describe('router: a write connecting to a hung primary', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let worker: RemediationWorker;
  let db: Router;

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    const config = clusterConfig(sandbox);
    monitor = await startMonitor(sandbox, { failover: config.failover, worker: config.worker });
    worker = await startWorker(sandbox, {});
    await eventually(() => monitor.topology?.nodes.every((n) => n.status === 'healthy') === true, 20_000, 'all healthy');
    await sandbox.primary.query('CREATE TABLE hung_writes (id serial PRIMARY KEY)');
    await sandbox.waitForReplay();
    // No write before the hang: the router holds no connection to the primary, so the write must connect.
    db = await startRouter(sandbox, { maxWritePauseMs: 50_000, pool: { max: 4, connectionTimeoutMillis: CONNECT_TIMEOUT_MS } });
  });
  afterAll(async () => {
    if (sandbox?.primary.running) sandbox.primary.resume();
    await db?.close();
    await worker?.close();
    await monitor?.close();
    await sandbox?.stop();
  });

  it('starts over on the new primary as soon as the epoch moves, well before the connect timeout', async () => {
    sandbox.primary.pause();
    const started = Date.now();
    const { rows } = await db.write<{ port: number }>('INSERT INTO hung_writes DEFAULT VALUES RETURNING inet_server_port() AS port');
    const tookMs = Date.now() - started;
    const epoch = db.getTopology().epoch;
    process.stderr.write(`[hung primary] write started after the hang landed on port ${rows[0]!.port} after ${tookMs} ms (epoch ${epoch}; connect timeout ${CONNECT_TIMEOUT_MS} ms)\n`);
    expect(rows[0]!.port).not.toBe(sandbox.primary.port);
    expect(epoch).toBe(2);
    // The failover takes seconds; the connect to the hung node would have waited a minute.
    expect(tookMs).toBeLessThan(CONNECT_TIMEOUT_MS / 2);
  });
});
