import { defineConfig } from 'vitest/config';

// Integration tests against hosted Supabase services; each suite skips itself without AMML_TEST_SUPABASE_URL.
export default defineConfig({
  test: {
    include: ['src/**/*.int.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    pool: 'forks',
    maxWorkers: 1,
  },
});
