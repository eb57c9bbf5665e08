import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, resolveConfig } from './config.js';

const valid = {
  cluster: 'main',
  redis: { url: 'redis://127.0.0.1:6379' },
  nodes: [
    { id: 'p1', host: 'db1', port: 5432 },
    { id: 'r1', host: 'db2', port: 5432, tags: ['nofailover'] },
  ],
  database: { user: 'pgreplica_monitor' },
};

function issuesOf(raw: unknown, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    resolveConfig(raw, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error('expected the config to be refused');
}

describe('config', () => {
  it('fills defaults and reads secrets from the environment', () => {
    const config = resolveConfig(valid, { PGREPLICA_DB_PASSWORD: 'pw', PGREPLICA_BUS_KEY: 'k'.repeat(32), PGREPLICA_HTTP_TOKEN: '' });
    expect(config).toMatchObject({
      monitor: { probeIntervalMs: 1_000, http: { port: 9187 } },
      worker: { http: { port: 9188 } },
      failover: { policy: 'manual' },
      databasePassword: 'pw',
      busKey: 'k'.repeat(32),
      httpToken: undefined,
    });
    expect(config.nodes[0]).toMatchObject({ priority: 100, weight: 1, tags: [] });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('refuses an unknown field, naming it', () => {
    expect(issuesOf({ ...valid, probeIntervall: 5 })).toEqual(['(root): unknown field(s) "probeIntervall": remove or correct the spelling']);
  });

  it('refuses a node without a port, naming the node', () => {
    const issues = issuesOf({ ...valid, nodes: [{ id: 'p1', host: 'db1' }] });
    expect(issues).toEqual(['nodes[0].port: each node needs a port (1-65535)']);
  });

  it('refuses a negative interval', () => {
    expect(issuesOf({ ...valid, monitor: { probeIntervalMs: -5 } })[0]).toMatch(/^monitor\.probeIntervalMs: /);
  });

  it('refuses duplicate node ids, naming both places', () => {
    const issues = issuesOf({ ...valid, nodes: [valid.nodes[0], { ...valid.nodes[1], id: 'p1' }] });
    expect(issues).toEqual(['nodes[1].id: duplicate node id "p1" (also nodes[0]); ids must be unique']);
  });

  it('reports every problem at once', () => {
    const issues = issuesOf({ ...valid, cluster: 'bad name', monitor: { thresholds: { degradedLagMs: 10_000, unhealthyLagMs: 5_000 } }, failover: { policy: 'sometimes' } });
    expect(issues.length).toBe(2);
    expect(issues.join('\n')).toMatch(/cluster: /);
    expect(issues.join('\n')).toMatch(/failover\.policy: /);
  });

  it('checks cross-field limits', () => {
    const issues = issuesOf({ ...valid, monitor: { thresholds: { degradedLagMs: 10_000, unhealthyLagMs: 5_000 } } });
    expect(issues).toEqual(['monitor.thresholds.degradedLagMs: must not exceed monitor.thresholds.unhealthyLagMs']);
  });

  it('applies environment overrides, and rejects malformed ones', () => {
    expect(resolveConfig(valid, { PGREPLICA_REDIS_URL: 'redis://other:6380', PGREPLICA_HTTP_PORT: '0' })).toMatchObject({
      redis: { url: 'redis://other:6380' },
      monitor: { http: { port: 0 } },
    });
    expect(issuesOf(valid, { PGREPLICA_HTTP_PORT: 'eighty' })).toEqual(['PGREPLICA_HTTP_PORT: must be a whole number, got "eighty"']);
  });

  it('refuses a short bus key and an unreadable secret file', () => {
    expect(issuesOf(valid, { PGREPLICA_BUS_KEY: 'short' })).toEqual(['bus key: must be at least 16 characters (set PGREPLICA_BUS_KEY or bus.keyFile)']);
    const issues = issuesOf({ ...valid, database: { user: 'u', passwordFile: '/nonexistent/pw' } });
    expect(issues[0]).toMatch(/^database\.passwordFile: cannot read \/nonexistent\/pw/);
  });

  it('loads YAML and JSON files, and names the file when it is broken', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgreplica-config-'));
    writeFileSync(join(dir, 'a.yaml'), 'cluster: main\nredis: { url: "redis://h:1" }\nnodes:\n  - { id: p1, host: h, port: 1 }\ndatabase: { user: u }\n');
    writeFileSync(join(dir, 'b.json'), JSON.stringify(valid));
    writeFileSync(join(dir, 'c.yaml'), 'cluster: [unclosed\n');
    expect(loadConfig(join(dir, 'a.yaml'), {}).nodes).toHaveLength(1);
    expect(loadConfig(join(dir, 'b.json'), {}).nodes).toHaveLength(2);
    expect(() => loadConfig(join(dir, 'c.yaml'), {})).toThrow(/c\.yaml.*not valid YAML or JSON/s);
    expect(() => loadConfig(join(dir, 'missing.yaml'), {})).toThrow(/ENOENT/);
  });
});

describe('the shipped example config', () => {
  it('is valid as shipped', () => {
    const path = new URL('../../../deploy/monitor/monitor.example.yaml', import.meta.url).pathname;
    const config = loadConfig(path, {});
    expect(config.nodes.map((n) => n.id)).toEqual(['db1', 'db2', 'db3']);
    expect(config.monitor.heartbeatMs).toBe(5_000);
  });
});

describe('slot names', () => {
  it('derives a valid slot name from ids with dashes, dots and capitals, and refuses two nodes on one slot', () => {
    const base = { cluster: 'c', redis: { url: 'redis://h:1' }, database: { user: 'u' } };
    const config = resolveConfig({ ...base, nodes: [{ id: 'pg-1', host: 'a', port: 1 }, { id: 'DB.East', host: 'b', port: 1 }, { id: 'x', host: 'c', port: 1, slotName: 'custom_x' }] }, {});
    expect(config.nodes.map((n) => n.slotName)).toEqual(['pg_1', 'db_east', 'custom_x']);
    expect(() => resolveConfig({ ...base, nodes: [{ id: 'pg-1', host: 'a', port: 1 }, { id: 'pg.1', host: 'b', port: 1 }] }, {})).toThrow(/nodes\[1\]\.slotName: slot name "pg_1" is also nodes\[0\]'s/);
    expect(() => resolveConfig({ ...base, nodes: [{ id: 'a', host: 'a', port: 1, slotName: 'Bad-Name' }] }, {})).toThrow(/nodes\[0\]\.slotName: must be 1-63 lower-case/);
  });
});

describe('TLS', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgreplica-tls-config-'));
  const pem = '-----BEGIN CERTIFICATE-----\nMIIB\nAAAA\n-----END CERTIFICATE-----\n';
  const caFile = join(dir, 'ca.crt');
  writeFileSync(caFile, pem);
  writeFileSync(join(dir, 'not-pem'), 'hello\n');

  it('reads the whole CA file of database.ssl and redis.tls', () => {
    const config = resolveConfig(
      { ...valid, redis: { url: 'rediss://u:p@127.0.0.1:6380', tls: { caFile, servername: 'redis.internal' } }, database: { user: 'u', ssl: { caFile } } },
      {},
    );
    expect(config.databaseCa).toBe(pem);
    expect(config.redis).toEqual({ url: 'rediss://u:p@127.0.0.1:6380', tls: { ca: pem, servername: 'redis.internal' } });
  });

  it('keeps redis.tls when PGREPLICA_REDIS_URL replaces the URL, and refuses it with a redis:// URL', () => {
    const raw = { ...valid, redis: { url: 'rediss://a:1', tls: { caFile } } };
    expect(resolveConfig(raw, { PGREPLICA_REDIS_URL: 'rediss://b:2' }).redis).toEqual({ url: 'rediss://b:2', tls: { ca: pem } });
    expect(issuesOf(raw, { PGREPLICA_REDIS_URL: 'redis://b:2' })).toEqual(['redis.tls: needs a rediss:// URL (redis.url is redis://, which is not encrypted)']);
  });

  it('takes tls for a Sentinel group and a Cluster too', () => {
    const sentinels = resolveConfig({ ...valid, redis: { sentinels: [{ host: 's', port: 26379 }], name: 'm', tls: {} } }, {});
    expect(sentinels.redis).toMatchObject({ name: 'm', tls: {} });
    expect(resolveConfig({ ...valid, redis: { cluster: [{ host: 'c', port: 7000 }], tls: { caFile } } }, {}).redis).toMatchObject({ tls: { ca: pem } });
  });

  it('reports a CA file that is missing or holds no certificate', () => {
    const issues = issuesOf({ ...valid, redis: { url: 'rediss://a:1', tls: { caFile: join(dir, 'not-pem') } }, database: { user: 'u', ssl: { caFile: join(dir, 'missing') } } });
    expect(issues).toEqual([
      expect.stringMatching(/^database\.ssl\.caFile: cannot read .*missing \(ENOENT\)/),
      expect.stringMatching(/^redis\.tls\.caFile: .*not-pem holds no PEM certificate/),
    ]);
  });
});
