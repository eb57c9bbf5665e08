import { resolveConfig } from '@pgreplica/runtime';
import { describe, expect, it } from 'vitest';
import { hookEnv } from './hook-env.js';

const base = { cluster: 'main', redis: { url: 'redis://127.0.0.1:1' }, nodes: [{ id: 'p1', host: 'h', port: 5432 }], database: { user: 'u' } };

describe('hookEnv', () => {
  it('passes what a shell needs and the listed names, never a secret', () => {
    const config = resolveConfig({ ...base, worker: { hooks: { passEnv: ['SSH_AUTH_SOCK'] } } }, {});
    const from = {
      PATH: '/usr/bin',
      HOME: '/var/lib/pgreplica',
      LC_ALL: 'C.UTF-8',
      SSH_AUTH_SOCK: '/run/agent',
      PGREPLICA_DB_PASSWORD: 'db-secret',
      PGREPLICA_BUS_KEY: 'bus-secret',
      PGREPLICA_HTTP_TOKEN: 'http-secret',
      PGPASSWORD: 'pg-secret',
      AWS_SECRET_ACCESS_KEY: 'cloud-secret',
    };
    const env = hookEnv(config, { PGREPLICA_NODE_ID: 'p1' }, from);
    expect(env).toEqual({ PATH: '/usr/bin', HOME: '/var/lib/pgreplica', LC_ALL: 'C.UTF-8', SSH_AUTH_SOCK: '/run/agent', PGREPLICA_NODE_ID: 'p1' });
  });

  it('refuses a passEnv name that holds one of pgreplica\'s secrets', () => {
    expect(() => resolveConfig({ ...base, worker: { hooks: { passEnv: ['PGREPLICA_BUS_KEY'] } } }, {})).toThrow(/worker.hooks.passEnv: "PGREPLICA_BUS_KEY" holds a secret/);
    expect(() => resolveConfig({ ...base, worker: { hooks: { passEnv: ['not a name'] } } }, {})).toThrow(/must be an environment variable name/);
  });
});
