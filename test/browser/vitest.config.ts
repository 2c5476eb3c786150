import os from 'node:os';
import path from 'node:path';
import { defineConfig } from 'vitest/config';

/** One screenshot directory per run, outside the repository; the tests print each file's path. */
const screenshotDir =
  process.env.CONFIDANT_SCREENSHOT_DIR ??
  path.join(os.tmpdir(), `confidant-browser-screenshots-${new Date().toISOString().replace(/[:.]/g, '-')}`);

/**
 * Browser tests: each file starts the real service (`confidant serve`) as a child process on
 * its own port, data directory and demo clinic, and drives Debian's Chromium with playwright-core.
 * Run with `npm run test:browser` (which builds the web app first when it is out of date).
 */
export default defineConfig({
  test: {
    root: path.resolve(import.meta.dirname, '../..'),
    include: ['test/browser/**/*.test.ts'],
    pool: 'forks',
    // Every file runs its own service and browser; two at a time is plenty on a small CI machine.
    maxWorkers: 2,
    testTimeout: 60_000,
    // Cold start of the service (PGlite) plus Chromium, or a graceful shutdown (15 s budget).
    hookTimeout: 120_000,
    env: { CONFIDANT_SCREENSHOT_DIR: screenshotDir },
    reporters: ['default'],
  },
});
