import { defineConfig } from 'vitest/config';

// Integration tests start real PostgreSQL and Redis servers: generous hook
// timeouts (bounded, so nothing hangs), two files at a time on two cores.
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    teardownTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
