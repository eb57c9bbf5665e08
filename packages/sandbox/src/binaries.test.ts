import { describe, expect, it } from 'vitest';
import { findBinaries } from './binaries.js';

describe('findBinaries', () => {
  it('finds PostgreSQL without a hard-coded version and reports its major version', () => {
    const found = findBinaries();
    expect(found.pgBinDir).toMatch(/bin\/?$/);
    expect(found.pgMajor).toBeGreaterThanOrEqual(13);
  });

  it('skips a PG_BINDIR that lacks the server programs', () => {
    const real = findBinaries();
    expect(findBinaries({ ...process.env, PG_BINDIR: '/nonexistent' }).pgBinDir).toBe(real.pgBinDir);
  });

  it('prefers a valid PG_BINDIR', () => {
    const real = findBinaries();
    expect(findBinaries({ ...process.env, PG_BINDIR: real.pgBinDir }).pgBinDir).toBe(real.pgBinDir);
  });
});
