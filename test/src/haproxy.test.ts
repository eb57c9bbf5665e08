import { join } from 'node:path';
import { HaproxyProcess, READ_ONLY_LISTENER, READ_WRITE_LISTENER, type ServerState } from '@pgreplica/deploy-harness';
import type { Monitor } from '@pgreplica/monitor';
import { freePort, runCommand, type Sandbox, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, writeConfig } from './cli-fixture.js';
import { startMonitor } from './monitor-fixture.js';
import { clusterConfig, startWorker, workerEnv } from './worker-fixture.js';

// A real haproxy (Debian's package; the bootstrap installs it as root, else
// HaproxyProcess.start fails naming the package) runs deploy/haproxy/haproxy.cfg
// with only its addresses changed, its checks on this monitor's HTTP API.
const BUS_KEY = 'haproxy-test-bus-key-0123456789';
/** Monitor probe interval and `fall` of the fixture config, and the HAProxy timing of the deploy file. */
const PROBE_INTERVAL_MS = 250;
const MONITOR_FALL = 3;
const HAPROXY_INTER_MS = 1_000;
const HAPROXY_FASTINTER_MS = 100;
/** A dead replica must be out of the read port within this (plus scheduling slack on a busy machine). */
const DOWN_BOUND_MS = MONITOR_FALL * PROBE_INTERVAL_MS + HAPROXY_INTER_MS + HAPROXY_FASTINTER_MS + 3_000;

/** The servers of a listener that take new connections: UP, or UP but failing checks ("UP 1/2"). */
const routing = (servers: ServerState[], listener: string) =>
  servers
    .filter((s) => s.listener === listener && s.status.startsWith('UP'))
    .map((s) => s.server)
    .sort();
const same = (a: string[], b: string[]) => a.join() === b.join();

describe('HAProxy with deploy/haproxy/haproxy.cfg on the monitor\'s checks', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let worker: RemediationWorker;
  let haproxy: HaproxyProcess;
  let configPath: string;
  let password: string;

  /** pgbench against a port of 127.0.0.1; returns its output. */
  const pgbench = async (port: number, args: string[]) =>
    (
      await runCommand(join(sandbox.binaries.pgBinDir, 'pgbench'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', ...args, 'postgres'], {
        env: { PGPASSWORD: password },
        timeoutMs: 60_000,
      })
    ).stdout;

  /** Opens one connection through `port`: which server answered and whether it is in recovery. */
  const whoAnswers = async (port: number): Promise<{ nodeId: string; inRecovery: boolean }> => {
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres', connectionTimeoutMillis: 3_000 });
    await client.connect();
    try {
      const { rows } = await client.query<{ port: number; ro: boolean }>('SELECT inet_server_port() AS port, pg_is_in_recovery() AS ro');
      const node = sandbox.nodes.find((n) => n.port === rows[0]!.port);
      return { nodeId: node?.id ?? `port ${rows[0]!.port}`, inRecovery: rows[0]!.ro };
    } finally {
      await client.end();
    }
  };

  const sessionsBy = async (listener: string) => new Map((await haproxy.servers()).filter((s) => s.listener === listener).map((s) => [s.server, s.sessionsTotal]));

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2 });
    password = sandbox.primary.connectionConfig.password as string;
    const config = clusterConfig(sandbox);
    monitor = await startMonitor(sandbox, { failover: config.failover, worker: config.worker }, BUS_KEY);
    worker = await startWorker(sandbox, {}, BUS_KEY);
    configPath = writeConfig(sandbox.baseDir, 'cli.json', config);
    haproxy = await HaproxyProcess.start({
      nodes: sandbox.nodes.map((n) => ({ id: n.id, host: n.host, port: n.port })),
      monitor: { host: '127.0.0.1', port: monitor.httpPort },
      readWritePort: await freePort(),
      readOnlyPort: await freePort(),
    });
    await pgbench(sandbox.primary.port, ['-i', '-s', '1', '-q']);
    await sandbox.waitForReplay();
    await haproxy.waitFor((s) => same(routing(s, READ_WRITE_LISTENER), ['p1']) && same(routing(s, READ_ONLY_LISTENER), ['r1', 'r2']), 20_000, 'p1 on the write port, r1 and r2 on the read port');
  });
  afterAll(async () => {
    await haproxy?.close();
    await worker?.close();
    await monitor?.close();
    await sandbox?.stop();
  });

  it('spreads pgbench -S on the read port over the replicas; the write port reaches only the primary', async () => {
    const before = await sessionsBy(READ_ONLY_LISTENER);
    // -C: a new connection per transaction, so every transaction is one routing decision.
    const out = await pgbench(haproxy.readOnlyPort, ['-S', '-C', '-c', '4', '-j', '2', '-T', '3', '-n']);
    const after = await sessionsBy(READ_ONLY_LISTENER);
    const delta = Object.fromEntries([...after].map(([server, total]) => [server, total - (before.get(server) ?? 0)]));
    const total = Object.values(delta).reduce((a, b) => a + b, 0);
    process.stderr.write(`[haproxy] read port: ${total} connections ${JSON.stringify(delta)}; ${/tps = [\d.]+/.exec(out)?.[0]}\n`);
    expect(delta.p1).toBe(0);
    expect(total).toBeGreaterThan(50);
    expect(delta.r1! / total).toBeGreaterThan(0.3);
    expect(delta.r2! / total).toBeGreaterThan(0.3);

    const writeBefore = await sessionsBy(READ_WRITE_LISTENER);
    for (let i = 0; i < 10; i++) expect(await whoAnswers(haproxy.readWritePort)).toEqual({ nodeId: 'p1', inRecovery: false });
    const writeAfter = await sessionsBy(READ_WRITE_LISTENER);
    expect(writeAfter.get('p1')! - writeBefore.get('p1')!).toBe(10);
    expect(writeAfter.get('r1')).toBe(0);
    expect(writeAfter.get('r2')).toBe(0);
  });

  it('moves the write port to the new primary after a switchover', async () => {
    const result = await cli(['--config', configPath, 'switchover', '--to', 'r1', '--wait', '--json'], workerEnv(sandbox, BUS_KEY));
    expect(result.err).toBe('');
    expect(result.code).toBe(0);
    const switched = Date.now();
    await haproxy.waitFor((s) => same(routing(s, READ_WRITE_LISTENER), ['r1']), 10_000, 'r1 alone on the write port');
    process.stderr.write(`[haproxy] write port on the new primary ${Date.now() - switched} ms after the switchover finished\n`);
    expect(await whoAnswers(haproxy.readWritePort)).toEqual({ nodeId: 'r1', inRecovery: false });
    const client = new pg.Client({ host: '127.0.0.1', port: haproxy.readWritePort, user: 'postgres', password, database: 'postgres' });
    await client.connect();
    try {
      await client.query('CREATE TABLE haproxy_after_switchover (id int)');
      await client.query('INSERT INTO haproxy_after_switchover VALUES (1)');
    } finally {
      await client.end();
    }
    // The old primary rejoined as a replica (the sandbox's rejoin hook): the read port takes it back.
    await haproxy.waitFor((s) => same(routing(s, READ_ONLY_LISTENER), ['p1', 'r2']), 30_000, 'p1 and r2 on the read port');
  });

  it('stops sending new connections to a killed replica within the check interval, failing no connection opened after the kill', async () => {
    // After the switchover: p1 (rejoined) and r2 take reads; r2 dies.
    const [victim, survivor] = ['r2', 'p1'];
    await haproxy.waitFor((s) => same(routing(s, READ_ONLY_LISTENER), [survivor, victim]), 10_000, 'p1 and r2 on the read port');
    const answered: string[] = [];
    const failures: { startedAt: number; message: string }[] = [];
    let running = true;
    const loop = (async () => {
      while (running) {
        const startedAt = Date.now();
        await whoAnswers(haproxy.readOnlyPort).then(
          (who) => answered.push(who.nodeId),
          (err: unknown) => failures.push({ startedAt, message: (err as Error).message }),
        );
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(answered).toContain(victim);
    const killing = Date.now();
    await sandbox.node(victim).kill();
    const killed = Date.now();
    await haproxy.waitFor((s) => s.some((x) => x.listener === READ_ONLY_LISTENER && x.server === victim && x.status.startsWith('DOWN')), DOWN_BOUND_MS + 5_000, `${victim} down`);
    const downMs = Date.now() - killing;
    const seen = answered.length;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    running = false;
    await loop;
    // A session already running on the replica when it died is cut (TCP mode
    // cannot move it); a connection opened after the kill must never fail.
    const inFlight = failures.filter((f) => f.startedAt < killed);
    process.stderr.write(`[haproxy] ${victim} killed: out of the read port after ${downMs} ms (bound ${DOWN_BOUND_MS} ms); ${failures.length - inFlight.length} failed connections opened after the kill, ${inFlight.length} cut while in flight\n`);
    expect(downMs).toBeLessThan(DOWN_BOUND_MS);
    // Connections that reached the dead replica before it was marked down were redispatched.
    expect(failures.filter((f) => f.startedAt >= killed)).toEqual([]);
    expect(inFlight.length).toBeLessThanOrEqual(1);
    const afterDown = answered.slice(seen);
    expect(afterDown.length).toBeGreaterThan(5);
    expect(new Set(afterDown)).toEqual(new Set([survivor]));
  });
});
