import { appendFileSync, chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, resolveServerUser, type Sandbox, startSandbox } from '@pgreplica/sandbox';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEPLOY_DIR, listDir, removeScratch, runReplicaSetup, scratchDir, slotNames } from './helpers.js';

// deploy/postgres/replica-setup.sh against a real primary: every failure has
// its documented exit code and a message, and leaves nothing half-written.
// (The success path runs for every sandbox: that is how replicas are made.)
describe('replica-setup.sh', () => {
  let sandbox: Sandbox;
  let scratch: string;
  let dataDir: string;
  const adminEnv = () => ({
    PRIMARY_ADMIN_USER: 'postgres',
    PRIMARY_ADMIN_PASSWORD: sandbox.primary.connectionConfig.password as string,
  });
  const primaryArgs = () => [sandbox.primary.host, String(sandbox.primary.port)];

  beforeAll(async () => {
    sandbox = await startSandbox({ replicas: 1, redis: false });
  });
  afterAll(async () => {
    await sandbox?.stop();
  });
  afterEach(() => {
    removeScratch(scratch);
  });
  const freshDir = () => {
    scratch = scratchDir();
    dataDir = join(scratch, 'data');
    return dataDir;
  };

  async function rolesNamed(name: string): Promise<number> {
    const [row] = await sandbox.primary.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_roles WHERE rolname = $1', [name]);
    return row!.n;
  }

  it('documents its usage and exit codes in --help', async () => {
    freshDir();
    const run = await runReplicaSetup(['--help'], {});
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain('Exit codes:');
    for (const code of ['4  primary unreachable', '5  authentication', '6  primary unsupported', '7  data directory not empty']) {
      expect(run.stdout).toContain(code);
    }
  });

  it('runs from a checkout the server user cannot enter (a clone under /root or a mode-700 mktemp -d)', async () => {
    const closed = mkdtempSync(join(tmpdir(), 'pgreplica-closed-'));
    try {
      chmodSync(closed, 0o700);
      cpSync(DEPLOY_DIR, join(closed, 'deploy'), { recursive: true });
      const run = await runReplicaSetup(['--help'], {}, undefined, join(closed, 'deploy'));
      expect(run.exitCode).toBe(0);
      expect(run.stdout).toContain('Exit codes:');
    } finally {
      rmSync(closed, { recursive: true, force: true });
    }
  });

  it('exits 2 on bad arguments or a missing REPLICA_DATA_DIR', async () => {
    freshDir();
    expect((await runReplicaSetup([], {})).exitCode).toBe(2);
    const unknown = await runReplicaSetup(['--bogus', 'localhost'], { REPLICA_DATA_DIR: dataDir });
    expect(unknown).toMatchObject({ exitCode: 2 });
    expect(unknown.stderr).toContain('unknown option: --bogus');
    const noDir = await runReplicaSetup(['127.0.0.1'], {});
    expect(noDir.exitCode).toBe(2);
    expect(noDir.stderr).toContain('REPLICA_DATA_DIR');
    const badPort = await runReplicaSetup(['127.0.0.1', '99999'], { REPLICA_DATA_DIR: dataDir });
    expect(badPort.exitCode).toBe(2);
    expect(badPort.stderr).toContain('port must be a number');
  });

  it('exits 4 for an unreachable primary and creates nothing', async () => {
    freshDir();
    const port = await freePort();
    const run = await runReplicaSetup(['--yes', '127.0.0.1', String(port)], { REPLICA_DATA_DIR: dataDir, PGPASSWORD: 'x' }, sandbox);
    expect(run.exitCode).toBe(4);
    expect(run.stderr).toMatch(/does not answer/);
    expect(existsSync(dataDir)).toBe(false);
  });

  it('exits 5 for a wrong password and creates nothing', async () => {
    freshDir();
    const slotsBefore = await slotNames(sandbox.primary);
    const run = await runReplicaSetup(
      ['--yes', ...primaryArgs(), sandbox.replicationUser.name],
      { REPLICA_DATA_DIR: dataDir, REPLICA_SLOT_NAME: 'wrong_pw', PGPASSWORD: 'not-the-password' },
      sandbox,
    );
    expect(run.exitCode).toBe(5);
    expect(run.stderr).toContain('password authentication failed');
    expect(run.stderr).not.toContain('not-the-password');
    expect(existsSync(dataDir)).toBe(false);
    expect(await slotNames(sandbox.primary)).toEqual(slotsBefore);
  });

  it('exits 7 for a non-empty data directory and leaves its contents alone', async () => {
    freshDir();
    const user = resolveServerUser();
    mkdirSync(dataDir, { mode: 0o700 });
    writeFileSync(join(dataDir, 'precious.txt'), 'keep me');
    if (user.switchUser) chownSync(dataDir, user.uid, user.gid);
    const slotsBefore = await slotNames(sandbox.primary);
    const run = await runReplicaSetup(
      ['--yes', ...primaryArgs(), sandbox.replicationUser.name],
      { REPLICA_DATA_DIR: dataDir, REPLICA_SLOT_NAME: 'not_empty', PGPASSWORD: sandbox.replicationUser.password },
      sandbox,
    );
    expect(run.exitCode).toBe(7);
    expect(run.stderr).toContain('is not empty');
    expect(run.stderr).toContain('--force');
    expect(listDir(dataDir)).toEqual(['precious.txt']);
    expect(readFileSync(join(dataDir, 'precious.txt'), 'utf8')).toBe('keep me');
    expect(await slotNames(sandbox.primary)).toEqual(slotsBefore);
  });

  it('refuses, even with --force, a data directory whose server runs', async () => {
    freshDir();
    const run = await runReplicaSetup(
      ['--yes', '--force', ...primaryArgs(), sandbox.replicationUser.name],
      { REPLICA_DATA_DIR: sandbox.replicas[0]!.dataDir, REPLICA_SLOT_NAME: 'running', PGPASSWORD: sandbox.replicationUser.password },
      sandbox,
    );
    expect(run.exitCode).toBe(7);
    expect(run.stderr).toContain('holds a running server');
    expect(await sandbox.replicas[0]!.isInRecovery()).toBe(true);
  });

  it('exits 6 for a server version below the minimum, before touching anything', async () => {
    freshDir();
    const run = await runReplicaSetup(
      ['--yes', ...primaryArgs(), sandbox.replicationUser.name],
      { REPLICA_DATA_DIR: dataDir, REPLICA_SLOT_NAME: 'too_old', PGPASSWORD: sandbox.replicationUser.password, REPLICA_MIN_SERVER_VERSION: '990000' },
      sandbox,
    );
    expect(run.exitCode).toBe(6);
    expect(run.stderr).toMatch(/server_version_num \d+; pgreplica needs at least 990000/);
    expect(existsSync(dataDir)).toBe(false);
  });

  it('--dry-run checks everything and changes nothing', async () => {
    freshDir();
    const run = await runReplicaSetup(
      ['--dry-run', '--create-user', ...primaryArgs(), 'dry_run_user'],
      { ...adminEnv(), REPLICA_DATA_DIR: dataDir, REPLICA_SLOT_NAME: 'dry_run', PGPASSWORD: 'secret' },
      sandbox,
    );
    expect(run.exitCode).toBe(0);
    expect(run.stderr).toContain('would create role dry_run_user');
    expect(run.stderr).toContain('dry run: checks passed');
    expect(existsSync(dataDir)).toBe(false);
    expect(await rolesNamed('dry_run_user')).toBe(0);
    expect(await slotNames(sandbox.primary)).not.toContain('dry_run');
  });

  it('exits 11 without a terminal and without --yes', async () => {
    freshDir();
    const run = await runReplicaSetup(
      [...primaryArgs(), sandbox.replicationUser.name],
      { REPLICA_DATA_DIR: dataDir, REPLICA_SLOT_NAME: 'no_tty', PGPASSWORD: sandbox.replicationUser.password },
      sandbox,
    );
    expect(run.exitCode).toBe(11);
    expect(run.stderr).toContain('pass --yes');
    expect(existsSync(dataDir)).toBe(false);
    expect(await slotNames(sandbox.primary)).not.toContain('no_tty');
  });

  it('seeds a replica, creating role and slot once, and reuses them when run again', async () => {
    freshDir();
    // Let the new role in, as an operator would with the pg_hba snippet.
    appendFileSync(join(sandbox.primary.dataDir, 'pg_hba.conf'), 'host replication extra_repl 127.0.0.1/32 scram-sha-256\n');
    await sandbox.primary.query('SELECT pg_reload_conf()');
    // A password with quotes, a backslash and a dollar sign: it must arrive intact.
    const env = { ...adminEnv(), REPLICA_DATA_DIR: dataDir, REPLICA_SLOT_NAME: 'extra', PGPASSWORD: "p'w\\x \"$y" };
    const first = await runReplicaSetup(['--yes', '--create-user', ...primaryArgs(), 'extra_repl'], env, sandbox);
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stderr).toContain('created role extra_repl');
    expect(first.stderr).toContain('created physical slot extra');
    expect(first.stdout).toContain('Next steps');
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(existsSync(join(dataDir, 'standby.signal'))).toBe(true);
    const auto = readFileSync(join(dataDir, 'postgresql.auto.conf'), 'utf8');
    expect(auto).toContain("primary_slot_name = 'extra'");
    expect(auto).toContain("recovery_target_timeline = 'latest'");
    expect(auto).toContain("application_name=''extra''");
    // The password is in a passfile next to the data directory, never in primary_conninfo.
    expect(auto).not.toContain('password');
    expect(auto).toContain(`passfile=''${dataDir}.pgpass''`);
    expect(statSync(`${dataDir}.pgpass`).mode & 0o777).toBe(0o600);
    expect(await slotNames(sandbox.primary)).toContain('extra');
    expect(await rolesNamed('extra_repl')).toBe(1);

    const again = await runReplicaSetup(['--yes', '--force', '--create-user', ...primaryArgs(), 'extra_repl'], env, sandbox);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stderr).toContain('role extra_repl exists');
    expect(again.stderr).toContain('slot extra exists; reusing it');
    await sandbox.primary.query("SELECT pg_drop_replication_slot('extra')");
    await sandbox.primary.query('DROP ROLE extra_repl');
  });

  it('exits 9 when the base backup fails, and rolls back the directory but not a slot it did not create', async () => {
    freshDir();
    // r1's slot exists and is active: the backup's WAL stream cannot use it.
    const run = await runReplicaSetup(
      ['--yes', ...primaryArgs(), sandbox.replicationUser.name],
      { REPLICA_DATA_DIR: dataDir, REPLICA_SLOT_NAME: 'r1', PGPASSWORD: sandbox.replicationUser.password },
      sandbox,
    );
    expect(run.exitCode).toBe(9);
    expect(run.stderr).toContain('pg_basebackup failed');
    expect(run.stderr).toContain('rolled back: removed');
    expect(existsSync(dataDir)).toBe(false);
    expect(await slotNames(sandbox.primary)).toContain('r1');
  });

  it('exits 8 with --create-user when the slot is in use by another replica', async () => {
    freshDir();
    const run = await runReplicaSetup(
      ['--yes', '--create-user', ...primaryArgs(), sandbox.replicationUser.name],
      { ...adminEnv(), REPLICA_DATA_DIR: dataDir, REPLICA_SLOT_NAME: 'r1', PGPASSWORD: sandbox.replicationUser.password },
      sandbox,
    );
    expect(run.exitCode).toBe(8);
    expect(run.stderr).toContain('in use by another replica');
    expect(existsSync(dataDir)).toBe(false);
  });
});

describe('replica-setup.sh against a misconfigured primary', () => {
  let sandbox: Sandbox;
  let scratch: string;

  beforeAll(async () => {
    // wal_level = minimal requires max_wal_senders = 0: no replica can ever stream from this server.
    sandbox = await startSandbox({
      replicas: 0,
      redis: false,
      settings: { wal_level: 'minimal', max_wal_senders: 0, archive_mode: 'off' },
    });
  });
  afterAll(async () => {
    await sandbox?.stop();
  });
  afterEach(() => removeScratch(scratch));

  it('exits 6 naming wal_level, through the admin connection', async () => {
    scratch = scratchDir();
    const dataDir = join(scratch, 'data');
    const run = await runReplicaSetup(
      ['--yes', '--create-user', sandbox.primary.host, String(sandbox.primary.port), 'minimal_repl'],
      {
        PRIMARY_ADMIN_USER: 'postgres',
        PRIMARY_ADMIN_PASSWORD: sandbox.primary.connectionConfig.password as string,
        REPLICA_DATA_DIR: dataDir,
        REPLICA_SLOT_NAME: 'minimal',
        PGPASSWORD: 'pw',
      },
      sandbox,
    );
    expect(run.exitCode).toBe(6);
    expect(run.stderr).toContain("wal_level = 'minimal'");
    expect(existsSync(dataDir)).toBe(false);
    const [row] = await sandbox.primary.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_roles WHERE rolname = 'minimal_repl'");
    expect(row!.n).toBe(0);
  });

  it('exits 6 naming max_wal_senders, through a replication connection', async () => {
    scratch = scratchDir();
    const dataDir = join(scratch, 'data');
    const run = await runReplicaSetup(
      ['--yes', sandbox.primary.host, String(sandbox.primary.port), 'postgres'],
      { REPLICA_DATA_DIR: dataDir, REPLICA_SLOT_NAME: 'minimal', PGPASSWORD: sandbox.primary.connectionConfig.password as string },
      sandbox,
    );
    expect(run.exitCode).toBe(6);
    expect(run.stderr).toContain('max_wal_senders');
    expect(existsSync(dataDir)).toBe(false);
  });
});
