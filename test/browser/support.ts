/**
 * Shared helpers for the browser tests: the real service as a child process, Debian's Chromium
 * through playwright-core, a watcher that fails a test on any Content Security Policy violation
 * or uncaught page error, and sign-in steps that go through the web app like a person would.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { AxeBuilder } from '@axe-core/playwright';
import { chromium } from 'playwright-core';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { expect } from 'vitest';
import { DEMO_PEOPLE, type DemoPerson } from '../../src/demo/demo-clinic';
import { totpCodeAt } from '../../src/modules/identity/totp';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export function demoPerson(email: string): DemoPerson {
  const person = DEMO_PEOPLE.find((p) => p.email === email);
  if (!person) throw new Error(`no demo person ${email}`);
  return person;
}

// ---------------------------------------------------------------------------------------------
// The service

/** A port that was free a moment ago (the service needs a fixed one: PORT=0 is not reported back). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface RunningService {
  baseUrl: string;
  /** The service's fresh data directory (its database and, under blobs/, the sealed recordings); removed on stop. */
  dataDir: string;
  /** How long the service took to answer /api/health. */
  startupMs: number;
  /** Everything the process wrote so far (stdout and stderr), for failure messages. */
  output(): string;
  /** SIGTERM, then waits up to `graceMs` for the process to exit; SIGKILL after that. */
  stop(graceMs?: number): Promise<Exit & { ms: number; timedOut: boolean }>;
}

/** Starts `confidant serve` with the demo clinic on a fresh data directory and waits for /api/health. */
export async function startService(opts: { readyTimeoutMs?: number; env?: Record<string, string> } = {}): Promise<RunningService> {
  const t0 = Date.now();
  const port = await freePort();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'confidant-browser-data-'));
  const env: NodeJS.ProcessEnv = { ...process.env };
  // This service uses its own embedded database, whatever the surrounding run points at.
  for (const k of ['DATABASE_URL', 'DATABASE_OWNER_URL', 'CONFIDANT_MODE', 'NODE_ENV', 'PUBLIC_URL', 'TRUST_PROXY']) {
    delete env[k];
  }
  Object.assign(env, {
    PORT: String(port),
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
    CONFIDANT_DEMO: '1',
    ...opts.env,
  });
  const child = spawn(process.execPath, ['bin/confidant.mjs', 'serve'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  let exit: Exit | null = null;
  const exited = new Promise<Exit>((resolve) =>
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    }),
  );

  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 90_000);
  for (;;) {
    if (exit) {
      await rm(dataDir, { recursive: true, force: true });
      throw new Error(`confidant serve exited early (${JSON.stringify(exit)}):\n${output}`);
    }
    try {
      const res = await fetch(`${baseUrl}/api/health`, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      await rm(dataDir, { recursive: true, force: true });
      throw new Error(`confidant serve was not healthy within the time allowed:\n${output}`);
    }
    await sleep(250);
  }
  const startupMs = Date.now() - t0;

  return {
    baseUrl,
    dataDir,
    startupMs,
    output: () => output,
    async stop(graceMs = 15_000) {
      const started = Date.now();
      if (!exit) child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const result = await Promise.race([
        exited,
        new Promise<null>((resolve) => {
          timer = setTimeout(() => resolve(null), graceMs);
        }),
      ]);
      clearTimeout(timer);
      let timedOut = false;
      let final: Exit;
      if (result === null) {
        timedOut = true;
        child.kill('SIGKILL');
        final = await exited;
      } else {
        final = result;
      }
      const ms = Date.now() - started;
      await rm(dataDir, { recursive: true, force: true });
      return { ...final, ms, timedOut };
    },
  };
}

/** The graceful-shutdown check every file ends with: SIGTERM, exit code 0, within 15 s. */
export async function stopAndCheck(service: RunningService | undefined): Promise<void> {
  if (!service) return;
  const result = await service.stop(15_000);
  console.log(`confidant serve: healthy after ${service.startupMs} ms, stopped (exit ${result.code}) ${result.ms} ms after SIGTERM`);
  const detail = `confidant serve shutdown: ${JSON.stringify(result)}\n${service.output()}`;
  expect(result.timedOut, detail).toBe(false);
  expect(result.signal, detail).toBeNull();
  expect(result.code, detail).toBe(0);
}

// ---------------------------------------------------------------------------------------------
// The browser

export function launchBrowser(opts: { extraArgs?: string[] } = {}): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      '--allow-loopback-in-peer-connection',
      ...(opts.extraArgs ?? []),
    ],
  });
}

/**
 * Collects, from every page of the contexts it watches, console messages that mention the
 * Content Security Policy and uncaught page errors. An init script also reports every
 * `securitypolicyviolation` event, so a violation is seen even if Chromium's own console
 * wording changes.
 */
export class PageWatch {
  readonly cspViolations: string[] = [];
  readonly pageErrors: string[] = [];
  readonly visited = new Set<string>();

  async context(browser: Browser, baseUrl: string): Promise<BrowserContext> {
    const context = await browser.newContext({ baseURL: baseUrl, viewport: { width: 1280, height: 800 }, locale: 'en-GB' });
    context.setDefaultTimeout(15_000);
    context.setDefaultNavigationTimeout(30_000);
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        console.error(
          `Content Security Policy violation: ${e.effectiveDirective} blocked ${e.blockedURI || '(inline)'} in ${e.sourceFile || e.documentURI}:${e.lineNumber}`,
        );
      });
    });
    context.on('page', (page) => this.attach(page));
    return context;
  }

  private attach(page: Page) {
    page.on('console', (msg) => {
      const text = msg.text();
      if (/content security policy/i.test(text)) this.cspViolations.push(`${page.url()}: ${text}`);
    });
    page.on('pageerror', (err) => this.pageErrors.push(`${page.url()}: ${err.name}: ${err.message}`));
    page.on('framenavigated', (frame) => {
      if (frame === page.mainFrame()) this.visited.add(new URL(frame.url()).pathname);
    });
  }

  /** Fails on anything collected so far, then starts afresh. */
  assertClean() {
    const csp = this.cspViolations.splice(0);
    const errors = this.pageErrors.splice(0);
    expect(csp, 'Content Security Policy violations in the browser console').toEqual([]);
    expect(errors, 'uncaught errors in the page').toEqual([]);
  }
}

// ---------------------------------------------------------------------------------------------
// Steps

export async function expectPath(page: Page, pathname: string, timeout = 15_000): Promise<void> {
  await page.waitForURL((url) => url.pathname === pathname, { timeout });
}

export async function expectHeading(page: Page, name: string): Promise<void> {
  await page.getByRole('heading', { level: 1, name, exact: true }).waitFor();
}

export async function signInWithPassword(page: Page, email: string, password: string): Promise<void> {
  if (new URL(page.url(), 'http://x').pathname !== '/sign-in') await page.goto('/sign-in');
  await expectHeading(page, 'Sign in');
  await page.getByLabel('Email', { exact: true }).fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

export async function signInPatient(page: Page, email: string): Promise<void> {
  await signInWithPassword(page, email, demoPerson(email).password);
  await expectPath(page, '/patient');
}

const STEP_MS = 30_000;
const lastStepUsed = new Map<string, number>();

/**
 * A current TOTP code for the secret. The server accepts each time step once per account, so
 * when this process already used the current step for this secret, wait for the next one.
 */
export async function freshTotp(secret: string): Promise<string> {
  let step = Math.floor(Date.now() / STEP_MS);
  const last = lastStepUsed.get(secret);
  if (last !== undefined && last >= step) {
    await sleep((last + 1) * STEP_MS - Date.now() + 250);
    step = Math.floor(Date.now() / STEP_MS);
  }
  lastStepUsed.set(secret, step);
  return totpCodeAt(secret, Date.now());
}

/** A six-digit code that is not valid for the secret in any step the server would accept now. */
export function wrongTotp(secret: string): string {
  const now = Date.now();
  const valid = new Set([-2, -1, 0, 1, 2].map((d) => totpCodeAt(secret, now + d * STEP_MS)));
  for (let n = 0; ; n++) {
    const code = String(n).padStart(6, '0');
    if (!valid.has(code)) return code;
  }
}

export async function enterTotp(page: Page, code: string): Promise<void> {
  await expectHeading(page, 'Enter your code');
  await page.getByLabel('Authenticator code', { exact: true }).fill(code);
  await page.getByRole('button', { name: 'Verify', exact: true }).click();
}

/** Password, then the authenticator code, ending on the person's home page; returns the code used. */
export async function signInStaff(page: Page, email: string, home: string): Promise<string> {
  const person = demoPerson(email);
  await signInWithPassword(page, email, person.password);
  await expectPath(page, '/sign-in/mfa');
  const code = await freshTotp(person.totpSecret!);
  await enterTotp(page, code);
  await expectPath(page, home);
  return code;
}

/** The signed-in session as the web app sees it (GET /api/session from inside the page). */
export function sessionIn(page: Page): Promise<{ authenticated: boolean; csrfToken?: string; account?: { id: string; displayName: string } }> {
  return page.evaluate(async () => {
    const res = await fetch('/api/session', { headers: { accept: 'application/json' }, cache: 'no-store' });
    return res.json();
  });
}

// ---------------------------------------------------------------------------------------------
// Screenshots

/** Where screenshots go: CONFIDANT_SCREENSHOT_DIR (set per run by the vitest config) or a temp dir. */
export async function screenshot(page: Page, name: string, opts: { fullPage?: boolean } = {}): Promise<string> {
  const dir = process.env.CONFIDANT_SCREENSHOT_DIR ?? path.join(os.tmpdir(), 'confidant-browser-screenshots');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: opts.fullPage ?? true });
  console.log(`screenshot: ${file}`);
  return file;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

// ---------------------------------------------------------------------------------------------
// Requests made by the page itself

export interface PageAnswer {
  status: number;
  text: string;
}

/**
 * A request made from inside the page, with its session cookie and, for a state-changing
 * method, its CSRF token (fetched fresh from /api/session), as the web app would send them.
 */
export function fetchIn(page: Page, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, body?: object): Promise<PageAnswer> {
  return page.evaluate(
    async ({ method, url, body }) => {
      const headers: Record<string, string> = { accept: 'application/json' };
      const init: RequestInit = { method, headers, credentials: 'same-origin', cache: 'no-store' };
      if (method !== 'GET') {
        const session = (await (await fetch('/api/session', { cache: 'no-store' })).json()) as { csrfToken?: string };
        headers['content-type'] = 'application/json';
        headers['x-csrf-token'] = session.csrfToken ?? 'none';
        init.body = JSON.stringify(body ?? {});
      }
      const res = await fetch(url, init);
      return { status: res.status, text: await res.text() };
    },
    { method, url, body },
  );
}

// ---------------------------------------------------------------------------------------------
// Accessibility

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };
const REPORTED_IMPACTS = new Set(['moderate', 'serious', 'critical']);

/** What sticks out sideways at the current viewport: the page, or any table's scroll region. */
export function sidewaysOverflow(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const problems: string[] = [];
    const root = document.documentElement;
    if (root.scrollWidth > window.innerWidth) {
      const culprits = [...document.body.querySelectorAll<HTMLElement>('*')]
        .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 0.5 && el.children.length === 0)
        .slice(0, 5)
        .map((el) => `<${el.tagName.toLowerCase()} class="${el.className}"> "${el.textContent?.trim().slice(0, 40)}"`);
      problems.push(`page is ${root.scrollWidth} px wide in a ${window.innerWidth} px window; past the edge: ${culprits.join(', ')}`);
    }
    for (const region of document.querySelectorAll<HTMLElement>('.table-scroll')) {
      if (region.scrollWidth > region.clientWidth) {
        problems.push(`table region "${region.getAttribute('aria-label')}" is ${region.scrollWidth} px wide in a ${region.clientWidth} px box`);
      }
    }
    return problems;
  });
}

/**
 * The page as it is now, at a desktop width and then on a phone: no axe-core violation of
 * moderate impact or worse, and nothing that scrolls sideways. Failures are soft, so that one
 * run lists every page's problems; the page is left at the phone width.
 */
export async function expectAccessible(page: Page, what: string): Promise<void> {
  for (const viewport of [DESKTOP, PHONE]) {
    await page.setViewportSize(viewport);
    const at = `${what} at ${viewport.width}×${viewport.height}`;
    const { violations } = await new AxeBuilder({ page }).analyze();
    const found = violations
      .filter((v) => REPORTED_IMPACTS.has(v.impact ?? ''))
      .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
    expect.soft(found, `axe-core violations on ${at}`).toEqual([]);
    expect.soft(await sidewaysOverflow(page), `sideways scrolling on ${at}`).toEqual([]);
  }
}
