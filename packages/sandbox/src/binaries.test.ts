import { describe, expect, it } from 'vitest';
import { findBinaries } from './binaries.js';

describe('findBinaries', () => {
  it('finds PostgreSQL without a hard-coded version and reports its major version', () => {
    const found = findBinaries();
    expect(found.pgBinDir).toMatch(/bin\/?$/);
    expect(found.pgMajor).toBeGreaterThanOrEqual(13);
  });

  it('refuses a PG_BINDIR or REDIS_SERVER that does not hold the programs, naming it (it used to be skipped silently)', () => {
    expect(() => findBinaries({ ...process.env, PG_BINDIR: '/nonexistent' })).toThrow(/PG_BINDIR=\/nonexistent does not hold initdb/);
    expect(() => findBinaries({ ...process.env, REDIS_SERVER: '/nonexistent/redis' })).toThrow(/REDIS_SERVER=\/nonexistent\/redis is not an executable/);
  });

  it('prefers a valid PG_BINDIR', () => {
    const real = findBinaries();
    expect(findBinaries({ ...process.env, PG_BINDIR: real.pgBinDir }).pgBinDir).toBe(real.pgBinDir);
  });
});
