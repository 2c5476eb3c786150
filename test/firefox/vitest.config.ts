import os from 'node:os';
import path from 'node:path';
import { defineConfig } from 'vitest/config';

/** One screenshot directory per run, outside the repository; the tests print each file's path. */
const screenshotDir =
  process.env.CONFIDANT_SCREENSHOT_DIR ??
  path.join(os.tmpdir(), `confidant-firefox-screenshots-${new Date().toISOString().replace(/[:.]/g, '-')}`);

/**
 * The patient side in Firefox ESR: each file starts the real service (`confidant serve`) as a
 * child process on its own port, data directory and demo clinic, and drives Debian's
 * firefox-esr with puppeteer-core over WebDriver BiDi (the GP of a call in Chromium, with
 * playwright-core). Run with `npm run test:firefox` (which builds the web app first when it is
 * out of date).
 */
export default defineConfig({
  test: {
    root: path.resolve(import.meta.dirname, '../..'),
    include: ['test/firefox/**/*.test.ts'],
    pool: 'forks',
    // Firefox, the service and, for the call, Chromium too: one file at a time on a small CI machine.
    maxWorkers: 1,
    testTimeout: 60_000,
    // Cold start of the service (PGlite) plus Firefox, or a graceful shutdown (15 s budget).
    hookTimeout: 120_000,
    env: { CONFIDANT_SCREENSHOT_DIR: screenshotDir },
    reporters: ['default'],
  },
});
