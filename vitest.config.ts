import { defineConfig } from 'vitest/config';

// Unit, PGlite and native-Postgres tests all run in `npm test`; hosted-service tests are *.int.test.ts.
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/*.int.test.ts', 'node_modules/**', 'dist/**'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: PGlite and TF.js are CPU-bound, more workers only thrash.
    pool: 'forks',
    maxWorkers: 2,
  },
});
