import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Monitor } from '@pgreplica/monitor';
import { createLogger, resolveConfig } from '@pgreplica/runtime';
import { type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { RemediationWorker } from '@pgreplica/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, writeConfig } from './cli-fixture.js';
import { eventually } from './helpers.js';
import { BusRecorder, monitorConfig } from './monitor-fixture.js';
import { startRouter } from './router-fixture.js';
import { clusterConfig, SANDBOX_HOOK, workerEnv } from './worker-fixture.js';

const KEY = 'secrets-test-bus-key-0123456789ab';
const TOKEN = 'secrets-test-http-token-0123456789';

/** Collects every log line a program writes. */
class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

// Every secret pgreplica handles — the database password, the replication
// password, the bus key, the HTTP token — through a switchover (repoint,
// rejoin hook, ALTER SYSTEM) with every statement logged by the servers:
// none appears in any server log line, program log line, event, /topology,
// `ps` output, or a hook's environment.
describe('security: secrets stay out of logs, statements and hooks', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let worker: RemediationWorker;
  let bus: BusRecorder;
  const logs = { monitor: new Capture(), worker: new Capture() };
  const psOutput: string[] = [];
  let hookEnvFile: string;
  let secrets: Record<string, string>;
  let base: Record<string, unknown>;
  let added: string[] = [];

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 2, settings: { log_statement: 'all', log_min_messages: 'debug1' } });
    secrets = {
      'database password': sandbox.primary.connectionConfig.password as string,
      'replication password': sandbox.replicationUser.password,
      'bus key': KEY,
      'HTTP token': TOKEN,
    };
    hookEnvFile = join(sandbox.baseDir, 'hook-env.txt');
    const env: NodeJS.ProcessEnv = { ...workerEnv(sandbox, KEY), PGREPLICA_HTTP_TOKEN: TOKEN };
    const defaults = clusterConfig(sandbox) as { worker: { hooks: Record<string, unknown> } };
    base = clusterConfig(sandbox, {
      worker: { ...defaults.worker, hooks: { ...defaults.worker.hooks, stop: `env > ${hookEnvFile} && node ${SANDBOX_HOOK} stop` } },
    });
    monitor = new Monitor(resolveConfig(monitorConfig(sandbox, base), env), createLogger('debug', logs.monitor, 'pgreplica-monitor'));
    await monitor.start();
    // The worker's environment holds every secret, as its systemd EnvironmentFile would.
    added = Object.keys(env).filter((k) => process.env[k] === undefined);
    Object.assign(process.env, env);
    worker = new RemediationWorker(resolveConfig(base, env), createLogger('debug', logs.worker, 'pgreplica-worker'));
    await worker.start();
    bus = await BusRecorder.start(sandbox.redis!.url, 'main', KEY);
    await eventually(() => monitor.topology?.nodes.every((n) => n.status === 'healthy') === true, 20_000, 'all healthy');
  });
  afterAll(async () => {
    for (const k of added) delete process.env[k];
    await worker?.close();
    await monitor?.close();
    await bus?.close();
    await sandbox?.stop();
  });

  it('a switchover, a router and the CLI leak no secret anywhere', async () => {
    const router = await startRouter(sandbox, { busKey: KEY });
    try {
      await router.query('CREATE TABLE IF NOT EXISTS secrets_probe (id int)');
      await router.query('INSERT INTO secrets_probe VALUES (1)');
      await router.query('SELECT count(*) FROM secrets_probe');
    } finally {
      await router.close();
    }
    const configPath = writeConfig(sandbox.baseDir, 'secrets.json', base);
    const cliEnv = { ...workerEnv(sandbox, KEY), PGREPLICA_HTTP_TOKEN: TOKEN };
    let watching = true;
    const ps = (async () => {
      while (watching) {
        psOutput.push(execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }));
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    try {
      const result = await cli(['--config', configPath, 'switchover', '--to', 'r1', '--wait', '--json'], cliEnv);
      expect(result.code, result.err).toBe(0);
      await eventually(async () => (await sandbox.node('p1').isInRecovery().catch(() => false)) === true, 60_000, 'p1 rejoined as a replica');
      await eventually(() => monitor.topology?.nodes.every((n) => n.status === 'healthy') === true, 30_000, 'all healthy again');
    } finally {
      watching = false;
      await ps;
    }
    const topology = await (await fetch(`http://127.0.0.1:${monitor.httpPort}/topology`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    expect(topology).toContain('"primaryId":"r1"');

    // What the servers logged: every statement, the worker's ALTER SYSTEM included.
    const serverLogs = readdirSync(join(sandbox.baseDir, 'logs')).map((f) => readFileSync(join(sandbox.baseDir, 'logs', f), 'utf8')).join('\n');
    expect(serverLogs).toContain('ALTER SYSTEM SET primary_conninfo');
    // The replicas' own configuration holds no password (a passfile next to the data directory does).
    const autoConfs = sandbox.nodes.map((n) => readFileSync(join(n.dataDir, 'postgresql.auto.conf'), 'utf8')).join('\n');
    expect(autoConfs).toContain('passfile=');
    expect(existsSync(hookEnvFile)).toBe(true);
    const hookEnv = readFileSync(hookEnvFile, 'utf8');
    expect(hookEnv).toContain('PGREPLICA_NODE_ID=p1');

    const places: Record<string, string> = {
      'server logs (log_statement = all)': serverLogs,
      'postgresql.auto.conf': autoConfs,
      'monitor log': logs.monitor.text,
      'worker log': logs.worker.text,
      'bus events': JSON.stringify(bus.events),
      '/topology': topology,
      'ps output': psOutput.join('\n'),
      "the stop hook's environment": hookEnv,
    };
    expect(logs.worker.text).toContain('job finished');
    const leaks = Object.entries(places).flatMap(([place, text]) => Object.entries(secrets).filter(([, secret]) => text.includes(secret)).map(([what]) => `${what} in ${place}`));
    expect(leaks).toEqual([]);
  });
});
