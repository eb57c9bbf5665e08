import { readFileSync } from 'node:fs';
import type { Monitor } from '@pgreplica/monitor';
import type { Router } from '@pgreplica/router-client';
import { createCertificateAuthority, type Sandbox, SANDBOX_REDIS_USER, startSandbox } from '@pgreplica/sandbox';
import type { RemediationWorker } from '@pgreplica/worker';
import { Redis, type RedisOptions } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, writeConfig } from './cli-fixture.js';
import { eventually, removeScratch, scratchDir } from './helpers.js';
import { BusRecorder, mergeConfig, startMonitor } from './monitor-fixture.js';
import { routerSees, startRouter } from './router-fixture.js';
import { clusterConfig, startWorker, workerEnv } from './worker-fixture.js';

const BUS_KEY = 'security-tls-test-bus-key-0123456';

/** Resolves with the error `promise` rejects with; fails the test when it resolves. */
async function refusal(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected a refusal');
}

/** One query on a fresh node-postgres client. */
async function pgQuery(config: pg.ClientConfig, sql = 'SELECT 1'): Promise<unknown> {
  const client = new pg.Client({ connectionTimeoutMillis: 3_000, ...config });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.query(sql)).rows;
  } finally {
    await client.end().catch(() => {});
  }
}

/** A one-shot ioredis client that does not retry: the first error (a TLS one included) is the answer. */
async function redisCall(options: RedisOptions, ...command: [string, ...string[]]): Promise<unknown> {
  const redis = new Redis({ lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 3_000, ...options });
  let connectionError: Error | undefined;
  redis.on('error', (err: Error) => {
    connectionError ??= err;
  });
  try {
    await redis.connect();
    return await redis.call(...command);
  } catch (err) {
    // ioredis rejects with "Connection is closed."; what closed it came as an 'error' event.
    throw connectionError ?? err;
  } finally {
    redis.disconnect();
  }
}

describe('TLS to PostgreSQL and Redis, verified, with a Redis ACL user', () => {
  let sandbox: Sandbox;
  let monitor: Monitor;
  let worker: RemediationWorker;
  let db: Router;
  let bus: BusRecorder;
  let config: Record<string, unknown>;
  let configPath: string;
  let scratch: string;
  let wrongCa: string;

  beforeAll(async () => {
    sandbox = await startSandbox({ tls: true, replicas: 2, cluster: 'main' });
    const caFile = sandbox.tls!.caFile;
    // Every program verifies: the sandbox CA for PostgreSQL and Redis, rediss:// with the ACL user.
    config = mergeConfig(clusterConfig(sandbox), {
      redis: { url: sandbox.redis!.url, tls: { caFile } },
      database: { ssl: { rejectUnauthorized: true, caFile } },
    });
    monitor = await startMonitor(sandbox, config, BUS_KEY);
    worker = await startWorker(sandbox, config, BUS_KEY);
    bus = await BusRecorder.start(sandbox.redis!.connectOptions, 'main', BUS_KEY);
    db = await startRouter(sandbox, {
      busKey: BUS_KEY,
      redis: sandbox.redis!.connectOptions,
      connection: { user: 'postgres', password: sandbox.primary.connectionConfig.password as string, database: 'postgres', ssl: { ca: sandbox.tls!.ca, rejectUnauthorized: true } },
    });
    await routerSees(db, (r) => r.getTopology().topology?.nodes.every((n) => n.status === 'healthy') === true, 15_000, 'all healthy');
    configPath = writeConfig(sandbox.baseDir, 'cli.json', config);
    scratch = scratchDir('pgreplica-tls-');
    wrongCa = (await createCertificateAuthority(scratch, 'wrong-ca', '/CN=not the sandbox CA')).certFile;
  });
  afterAll(async () => {
    await db?.close();
    await worker?.close();
    await monitor?.close();
    await bus?.close();
    await sandbox?.stop();
    if (scratch) removeScratch(scratch);
  });

  it('runs monitor, worker, CLI and router over TLS, through a switchover', async () => {
    // Every session the servers see is TLS: the programs' and the replicas' walsenders.
    const sessions = await sandbox.primary.query<{ application_name: string; ssl: boolean }>(
      "SELECT a.application_name, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.client_addr IS NOT NULL",
    );
    expect(sessions.length).toBeGreaterThan(2);
    expect(sessions.filter((s) => !s.ssl)).toEqual([]);
    // replica-setup.sh seeded the replicas with verify-full, and said so; the sandbox's URLs carry it too.
    expect(readFileSync(`${sandbox.baseDir}/logs/setup-r1.log`, 'utf8')).toMatch(/TLS: sslmode=verify-full \(CA .*ca\.crt and host name checked\)/);
    expect(await pgQuery({ connectionString: sandbox.primary.url }, 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).toEqual([{ ssl: true }]);

    await db.query('CREATE TABLE tls_ledger (id int PRIMARY KEY)');
    await db.write('INSERT INTO tls_ledger VALUES (1)');
    await sandbox.waitForReplay();
    expect((await db.read<{ n: number }>('SELECT count(*)::int AS n FROM tls_ledger')).rows[0]?.n).toBe(1);

    const env = workerEnv(sandbox, BUS_KEY);
    const status = await cli(['--config', configPath, 'status', '--json'], env);
    expect(status.err).toBe('');
    expect(JSON.parse(status.out).topology.nodes.map((n: { id: string }) => n.id).sort()).toEqual(['p1', 'r1', 'r2']);
    const slots = await cli(['--config', configPath, 'slots', '--json'], env);
    expect(slots.err).toBe('');
    expect(JSON.parse(slots.out).map((s: { slot_name: string }) => s.slot_name)).toEqual(['r1', 'r2']);

    const switched = await cli(['--config', configPath, 'switchover', '--to', 'r1', '--wait', '--json'], env);
    expect(switched.err).toBe('');
    expect(JSON.parse(switched.out)).toMatchObject({ result: { outcome: 'switched', primaryId: 'r1', oldPrimary: 'rejoined' } });
    await routerSees(db, (r) => r.getWriteTarget().nodeId === 'r1', 15_000, 'writes on r1');
    await db.write('INSERT INTO tls_ledger VALUES (2)');

    // p1 (rejoined by the hook) and r2 (repointed by the worker) stream from r1 over verified TLS.
    await eventually(async () => {
      const rep = await sandbox.node('r1').query<{ application_name: string; state: string; ssl: boolean }>(
        'SELECT r.application_name, r.state, s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)',
      );
      return ['p1', 'r2'].every((id) => rep.some((r) => r.application_name === id && r.state === 'streaming' && r.ssl));
    }, 30_000, 'p1 and r2 streaming from r1 over TLS');
    const [r2] = await sandbox.node('r2').query<{ primary_conninfo: string }>('SHOW primary_conninfo');
    expect(r2?.primary_conninfo).toContain(`port=${sandbox.node('r1').port} `);
    expect(r2?.primary_conninfo).toMatch(/sslmode='?verify-full/);
    await eventually(async () => (await sandbox.node('r2').query<{ n: number }>('SELECT count(*)::int AS n FROM tls_ledger'))[0]?.n === 2, 10_000, 'r2 replays the write on r1');
    // Nothing any program (or a Lua script of BullMQ's) sent was refused by the ACL.
    const stats = String(await redisCall(sandbox.redis!.connectOptions, 'INFO', 'commandstats'));
    expect(stats).toMatch(/cmdstat_evalsha:/);
    expect(stats.split('\n').filter((line) => !/rejected_calls=0,/.test(line) && line.startsWith('cmdstat_'))).toEqual([]);
  });

  it('refuses a wrong CA and a wrong host name for PostgreSQL', async () => {
    const node = sandbox.primary.connectionConfig;
    const wrong = await refusal(pgQuery({ ...node, ssl: { ca: readFileSync(wrongCa, 'utf8'), rejectUnauthorized: true } }));
    expect(wrong.code).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    const name = await refusal(pgQuery({ ...node, ssl: { ca: sandbox.tls!.ca, rejectUnauthorized: true, servername: 'db.example.com' } }));
    expect(name.code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    // The same through the CLI (pgreplica slots connects to the primary).
    const cliConfig = writeConfig(scratch, 'wrong-db-ca.json', mergeConfig(config, { database: { ssl: { caFile: wrongCa } } }));
    const slots = await cli(['--config', cliConfig, 'slots'], workerEnv(sandbox, BUS_KEY));
    expect(slots.code).not.toBe(0);
    expect(slots.err).toMatch(/PostgreSQL node \w+ \(127\.0\.0\.1:\d+\) presented a certificate that does not verify \(unable to verify the first certificate\); check database\.ssl\.caFile/);
  });

  it('refuses plain-text PostgreSQL connections over TCP (pg_hba: hostssl only)', async () => {
    const { ssl: _ssl, ...plain } = sandbox.primary.connectionConfig;
    const err = await refusal(pgQuery({ ...plain, ssl: false }));
    expect(err.message).toMatch(/no pg_hba\.conf entry for host "127\.0\.0\.1", user "postgres", database "postgres", no encryption/);
  });

  it('refuses a wrong CA and a wrong host name for Redis', async () => {
    const options = { ...sandbox.redis!.connectOptions, tls: { ca: readFileSync(wrongCa, 'utf8') } };
    const err = await refusal(redisCall(options, 'PING'));
    // redis-server sends its chain (the CA too), PostgreSQL only its own certificate.
    expect(err.message).toBe('self-signed certificate in certificate chain');
    const name = await refusal(redisCall({ ...sandbox.redis!.connectOptions, tls: { ca: sandbox.tls!.ca, servername: 'redis.example.com' } }, 'PING'));
    expect(name.code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    const cliConfig = writeConfig(scratch, 'wrong-redis-ca.json', mergeConfig(config, { redis: { tls: { caFile: wrongCa } } }));
    const status = await cli(['--config', cliConfig, 'status'], workerEnv(sandbox, BUS_KEY));
    expect(status.code).toBe(3);
    expect(status.err).toMatch(/Redis at rediss:\/\/\*\*\*@127\.0\.0\.1:\d+ presented a certificate that does not verify \(self-signed certificate in certificate chain\); check redis\.tls\.caFile/);
  });

  it('keeps the Redis user to its keys and channels, and the default user out', async () => {
    const options = sandbox.redis!.connectOptions;
    expect(options.username).toBe(SANDBOX_REDIS_USER);
    expect(await redisCall(options, 'SET', 'pgreplica:{main}:tls-test', '1')).toBe('OK');
    expect((await refusal(redisCall(options, 'SET', 'other', '1'))).message).toMatch(/^NOPERM/);
    expect((await refusal(redisCall(options, 'GET', 'pgreplica:{other}:topology'))).message).toMatch(/^NOPERM/);
    expect((await refusal(redisCall(options, 'PUBLISH', 'other', 'x'))).message).toMatch(/^NOPERM/);
    const beyond: [string, ...string[]][] = [['FLUSHALL'], ['KEYS', '*'], ['SCAN', '0'], ['FUNCTION', 'FLUSH'], ['PUBSUB', 'CHANNELS'], ['SELECT', '1'], ['CLIENT', 'LIST'], ['ACL', 'LIST']];
    for (const command of beyond) {
      expect((await refusal(redisCall(options, ...command))).message, command.join(' ')).toMatch(/^NOPERM/);
    }
    expect((await refusal(redisCall(options, 'CONFIG', 'SET', 'tls-auth-clients', 'no'))).message).toMatch(/^NOPERM/);
    const { username: _u, password: _p, ...anonymous } = options;
    expect((await refusal(redisCall(anonymous, 'PING'))).message).toMatch(/^NOAUTH/);
    expect((await refusal(redisCall({ ...anonymous, username: 'default', password: 'anything' }, 'PING'))).message).toMatch(/^WRONGPASS/);
  });
});
