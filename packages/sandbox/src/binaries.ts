import { execFileSync } from 'node:child_process';
import { accessSync, constants, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SandboxError } from './errors.js';

/** Where the PostgreSQL and Redis server programs were found. */
export interface Binaries {
  /** Directory holding initdb, pg_ctl, postgres, psql, pg_basebackup. */
  pgBinDir: string;
  /** PostgreSQL major version of those binaries. */
  pgMajor: number;
  /** Path of redis-server. */
  redisServer: string;
}

const PG_PROGRAMS = ['initdb', 'pg_ctl', 'postgres', 'psql', 'pg_basebackup', 'pg_isready'] as const;

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function hasPgPrograms(dir: string): boolean {
  return PG_PROGRAMS.every((program) => isExecutable(join(dir, program)));
}

/** Candidate PostgreSQL bin directories, best first: `$PG_BINDIR`, `pg_config --bindir`, newest Debian layout. */
function pgBinDirCandidates(env: NodeJS.ProcessEnv): string[] {
  const candidates: string[] = [];
  if (env.PG_BINDIR) candidates.push(env.PG_BINDIR);
  try {
    candidates.push(execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  } catch {
    // pg_config is optional (Debian ships it in libpq-dev).
  }
  try {
    const versions = readdirSync('/usr/lib/postgresql')
      .filter((name) => /^\d+$/.test(name))
      .sort((a, b) => Number(b) - Number(a));
    for (const version of versions) candidates.push(`/usr/lib/postgresql/${version}/bin`);
  } catch {
    // Not the Debian layout.
  }
  return candidates;
}

/** Path of `program` in `$PATH`, or undefined. */
export function findOnPath(program: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(':')) {
    if (dir && isExecutable(join(dir, program))) return join(dir, program);
  }
  // Debian's place, for a PATH without /usr/bin (a service manager's, say).
  return isExecutable(`/usr/bin/${program}`) ? `/usr/bin/${program}` : undefined;
}

/**
 * Finds the server binaries without assuming one PostgreSQL version.
 * @throws SandboxError (`binary-not-found`) saying what to install.
 */
export function findBinaries(env: NodeJS.ProcessEnv = process.env): Binaries {
  // An explicit PG_BINDIR that does not hold the programs is a mistake to report, not to work around.
  if (env.PG_BINDIR && !hasPgPrograms(env.PG_BINDIR)) {
    throw new SandboxError('binary-not-found', `PG_BINDIR=${env.PG_BINDIR} does not hold ${PG_PROGRAMS.join(', ')}: fix it or unset it to find them automatically`);
  }
  if (env.REDIS_SERVER && !isExecutable(env.REDIS_SERVER)) {
    throw new SandboxError('binary-not-found', `REDIS_SERVER=${env.REDIS_SERVER} is not an executable: fix it or unset it to find redis-server on PATH`);
  }
  const pgBinDir = pgBinDirCandidates(env).find(hasPgPrograms);
  if (!pgBinDir) {
    throw new SandboxError(
      'binary-not-found',
      'PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: install them (apt-get install postgresql) or set PG_BINDIR',
    );
  }
  const versionText = execFileSync(join(pgBinDir, 'postgres'), ['--version'], { encoding: 'utf8' });
  const pgMajor = Number(/(\d+)(?:\.\d+)?/.exec(versionText)?.[1]);
  const redisServer = env.REDIS_SERVER || findOnPath('redis-server', env);
  if (!redisServer) {
    throw new SandboxError('binary-not-found', 'redis-server not found: install it (apt-get install redis-server) or set REDIS_SERVER');
  }
  return { pgBinDir, pgMajor, redisServer };
}
