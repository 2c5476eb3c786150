import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // The fault suite (a throwaway PostgreSQL cluster restarted and frozen, a tmpfs filled) waits on
    // real faults for minutes and needs root: `npm run test:faults`, its own CI stage.
    exclude: ['test/browser/**', 'test/firefox/**', 'node_modules/**', ...(process.env.TEST_FAULTS ? [] : ['test/faults/**'])],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    // Each worker process keeps its modules between test files instead of importing the whole
    // service again for each (about a minute of CPU over the run): every suite starts its own
    // service and database and shares no state through modules, and tests that replace a method
    // put it back. npm test went from 4m26 to 2m49 on a 2-core machine.
    isolate: false,
    // Two suites at a time even on a 2-core machine (Vitest's default there is one): most suites
    // spend much of their time waiting (password hashing on libuv's pool, timers, PostgreSQL), and
    // on this project's 2-core machines the suite took 296 s one at a time and 125 s two at a time.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
