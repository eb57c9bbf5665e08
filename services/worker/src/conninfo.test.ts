import { resolveConfig } from '@pgreplica/runtime';
import { describe, expect, it } from 'vitest';
import { formatConninfo, parseConninfo } from './conninfo.js';
import { conninfo } from './repoint.js';

const base = { cluster: 'c', redis: { url: 'redis://h:1' }, nodes: [{ id: 'p1', host: 'h', port: 1 }], database: { user: 'u' } };
const primary = { id: 'r1', host: 'db2.internal', port: 5433, slotName: 'r1' } as Parameters<typeof conninfo>[0];

describe('connection strings', () => {
  it('parses what pg_basebackup -R writes (quoted, doubled-quote-free, escaped)', () => {
    const text = "user=replicator password='p\\'w\\\\x' channel_binding=prefer host=127.0.0.1 port=5432 sslmode=verify-full sslrootcert='/etc/ca dir/ca.crt' sslsni=1";
    expect(Object.fromEntries(parseConninfo(text))).toEqual({
      user: 'replicator',
      password: "p'w\\x",
      channel_binding: 'prefer',
      host: '127.0.0.1',
      port: '5432',
      sslmode: 'verify-full',
      sslrootcert: '/etc/ca dir/ca.crt',
      sslsni: '1',
    });
    expect(parseConninfo('')).toEqual(new Map());
  });

  it('round-trips through formatConninfo', () => {
    const entries = new Map([['password', "a'b\\c d"], ['host', 'h']]);
    expect(parseConninfo(formatConninfo(entries))).toEqual(entries);
  });

  it('rejects malformed text', () => {
    expect(() => parseConninfo('host')).toThrow(/key=value/);
    expect(() => parseConninfo("host='h")).toThrow(/unterminated/);
  });
});

describe('repoint conninfo', () => {
  it("keeps the replica's TLS settings and passfile, drops its old host, port and any password, and names it by its slot", () => {
    const config = resolveConfig(base, {});
    const current = "user=replicator password=old host=10.0.0.1 port=5432 passfile='/var/lib/postgresql/16/main.pgpass' sslmode=verify-full sslrootcert=/etc/pg/ca.crt gssencmode=prefer";
    expect(Object.fromEntries(parseConninfo(conninfo(primary, { slotName: 'db_east' }, config, current)))).toEqual({
      host: 'db2.internal',
      port: '5433',
      user: 'replicator',
      application_name: 'db_east',
      passfile: '/var/lib/postgresql/16/main.pgpass',
      sslmode: 'verify-full',
      sslrootcert: '/etc/pg/ca.crt',
    });
  });

  it('lets worker.replication.sslmode, sslrootcert and passfile override them, even over an unreadable conninfo', () => {
    const config = resolveConfig({ ...base, worker: { replication: { sslmode: 'verify-full', sslrootcert: '/ca.pem', passfile: '/etc/pg.pass' } } }, {});
    const info = parseConninfo(conninfo(primary, { slotName: 'r2' }, config, "sslmode=prefer host='unterminated"));
    expect(info.get('sslmode')).toBe('verify-full');
    expect(info.get('sslrootcert')).toBe('/ca.pem');
    expect(info.get('passfile')).toBe('/etc/pg.pass');
    expect(info.has('password')).toBe(false);
  });
});
