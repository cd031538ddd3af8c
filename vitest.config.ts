import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Each file runs in its own process: tfjs keeps one global engine per process, and the
    // backend tests must not leak their backend choice into each other.
    pool: 'forks',
    maxWorkers: 2,
  },
});
