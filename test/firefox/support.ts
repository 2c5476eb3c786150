/**
 * Firefox ESR through puppeteer-core over WebDriver BiDi, for the patient side of the web app.
 * The service itself comes from test/browser/support.ts (startService, stopAndCheck, demoPerson);
 * what is here are puppeteer-typed equivalents of its page helpers.
 */
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';
import type { Browser, BrowserContext, ElementHandle, Page } from 'puppeteer-core';
import { expect } from 'vitest';
import { demoPerson } from '../browser/support';

export const FIREFOX = process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr';

/** Firefox ESR, headless, on a fresh profile (puppeteer makes one per launch and removes it on close). */
export function launchFirefox(): Promise<Browser> {
  return puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    protocol: 'webDriverBiDi',
    defaultViewport: { width: 1280, height: 800 },
    extraPrefsFirefox: {
      // A fake camera and microphone (a test pattern and a tone), granted without asking.
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      // The call's <audio> and <video> play without a click, as with Chromium's autoplay flag.
      'media.autoplay.default': 0,
      'media.autoplay.blocking_policy': 0,
      // ICE over loopback too, so a call connects on a machine with no other interface.
      'media.peerconnection.ice.loopback': true,
    },
  });
}

/**
 * Collects, from every page it opens, Content Security Policy violations (reported by an init
 * script from `securitypolicyviolation`, and any console message that names the policy) and
 * uncaught page errors. Each page gets its own browser context: its own cookies, as a person on
 * their own computer.
 */
export class FirefoxPageWatch {
  readonly cspViolations: string[] = [];
  readonly pageErrors: string[] = [];
  readonly contexts: BrowserContext[] = [];

  async page(browser: Browser, init?: () => void): Promise<Page> {
    const context = await browser.createBrowserContext();
    this.contexts.push(context);
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    page.setDefaultNavigationTimeout(30_000);
    await page.evaluateOnNewDocument(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        console.error(
          `Content Security Policy violation: ${e.effectiveDirective} blocked ${e.blockedURI || '(inline)'} in ${e.sourceFile || e.documentURI}:${e.lineNumber}`,
        );
      });
    });
    if (init) await page.evaluateOnNewDocument(init);
    page.on('console', (msg) => {
      const text = msg.text();
      if (/content security policy/i.test(text)) this.cspViolations.push(`${page.url()}: ${text}`);
    });
    page.on('pageerror', (err) => this.pageErrors.push(`${page.url()}: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`));
    return page;
  }

  /** Fails on anything collected so far, then starts afresh. */
  assertClean() {
    const csp = this.cspViolations.splice(0);
    const errors = this.pageErrors.splice(0);
    expect(csp, 'Content Security Policy violations in the browser console').toEqual([]);
    expect(errors, 'uncaught errors in the page').toEqual([]);
  }

  async close() {
    await Promise.all(this.contexts.splice(0).map((c) => c.close().catch(() => undefined)));
  }
}

// ---------------------------------------------------------------------------------------------
// Finding things as a person would: by role and accessible name, by label

/** An element by its role and its whole accessible name (Firefox's accessibility tree, through BiDi). */
export function aria(role: string, name: string): string {
  return `::-p-aria([name=${JSON.stringify(name)}][role=${JSON.stringify(role)}])`;
}

/** The control a <label> with exactly this text names (through `for`, or by wrapping it). */
export async function byLabel(page: Page, label: string, timeout = 15_000): Promise<ElementHandle<HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement>> {
  const handle = await page.waitForFunction(
    (label) => {
      for (const l of document.querySelectorAll('label')) {
        if (l.textContent?.trim() !== label) continue;
        const control = l.control;
        if (control) return control;
      }
      return null;
    },
    { timeout, polling: 100 },
    label,
  );
  return handle as ElementHandle<HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement>;
}

/** Waits for an element matching the selector whose text (innerText, trimmed) matches `text`. */
export async function withText(page: Page, selector: string, text: string | RegExp, timeout = 15_000): Promise<ElementHandle<HTMLElement>> {
  const pattern = typeof text === 'string' ? { source: `^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, flags: '' } : { source: text.source, flags: text.flags };
  const handle = await page.waitForFunction(
    (selector, source, flags) => {
      const re = new RegExp(source, flags);
      for (const el of document.querySelectorAll<HTMLElement>(selector)) if (re.test(el.innerText.trim())) return el;
      return null;
    },
    { timeout, polling: 100 },
    selector,
    pattern.source,
    pattern.flags,
  );
  return handle as ElementHandle<HTMLElement>;
}

export async function expectPath(page: Page, pathname: string, timeout = 15_000): Promise<void> {
  await page.waitForFunction((pathname) => location.pathname === pathname, { timeout, polling: 100 }, pathname);
}

export async function expectHeading(page: Page, name: string, timeout = 15_000): Promise<void> {
  await withText(page, 'h1', name, timeout);
}

/** Chooses, in the select with that label, the option whose text is `text`. */
export async function selectByText(page: Page, label: string, text: string): Promise<void> {
  const select = (await byLabel(page, label)) as ElementHandle<HTMLSelectElement>;
  const value = await select.evaluate((s, text) => [...s.options].find((o) => o.textContent?.trim() === text)?.value ?? null, text);
  expect(value, `an option "${text}" in ${label}`).not.toBeNull();
  await select.select(value!);
}

/**
 * On the booking form, the first free time that starts more than `leadMs` from now (so that
 * it cannot pass while the test runs). Its value is "clinicianId|startsAt".
 */
export async function timeAtLeast(page: Page, leadMs: number): Promise<{ radio: ElementHandle<HTMLInputElement>; clinicianId: string; startsAt: string }> {
  const radio = (await page.waitForFunction(
    (soon) => {
      const legend = [...document.querySelectorAll('legend')].find((l) => l.textContent?.trim() === 'Time');
      for (const radio of legend?.parentElement?.querySelectorAll<HTMLInputElement>('input[type="radio"]') ?? []) {
        const startsAt = radio.value.split('|')[1];
        if (startsAt && new Date(startsAt).getTime() > soon) return radio;
      }
      return null;
    },
    { polling: 100 },
    Date.now() + leadMs,
  )) as ElementHandle<HTMLInputElement>;
  const [clinicianId, startsAt] = (await radio.evaluate((r) => r.value)).split('|') as [string, string];
  return { radio, clinicianId, startsAt };
}

// ---------------------------------------------------------------------------------------------
// Steps

export async function signInWithPassword(page: Page, baseUrl: string, email: string, password: string): Promise<void> {
  await page.goto(`${baseUrl}/sign-in`);
  await expectHeading(page, 'Sign in');
  await (await byLabel(page, 'Email')).type(email);
  await (await byLabel(page, 'Password')).type(password);
  await page.locator(aria('button', 'Sign in')).click();
}

/** A demo patient signs in with their password; the demo asks nothing more of a patient. */
export async function signInPatient(page: Page, baseUrl: string, email: string): Promise<void> {
  await signInWithPassword(page, baseUrl, email, demoPerson(email).password);
  await expectPath(page, '/patient');
}

/** The signed-in session as the web app sees it (GET /api/session from inside the page). */
export function sessionIn(page: Page): Promise<{ authenticated: boolean; account?: { id: string; displayName: string } }> {
  return page.evaluate(async () => {
    const res = await fetch('/api/session', { headers: { accept: 'application/json' }, cache: 'no-store' });
    return res.json();
  });
}

/** A GET from inside the page, with its session cookie, as the web app would send it. */
export function getIn(page: Page, url: string): Promise<{ status: number; text: string }> {
  return page.evaluate(async (url) => {
    const res = await fetch(url, { headers: { accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' });
    return { status: res.status, text: await res.text() };
  }, url);
}

/** What a page showed when something went wrong, to read beside the error: its text and a screenshot. */
export async function explainFailure(page: Page | undefined, name: string): Promise<void> {
  if (!page || page.isClosed()) return;
  const text = await page.$eval('main', (m) => (m as HTMLElement).innerText).catch(() => '(no main)');
  console.log(`${name} ${page.url()}:\n${text}\n`);
  await screenshot(page, `firefox-failure-${name}`).catch(() => undefined);
}

/** Where screenshots go: CONFIDANT_SCREENSHOT_DIR (set per run by the vitest config) or a temp dir. */
export async function screenshot(page: Page, name: string): Promise<string> {
  const dir = process.env.CONFIDANT_SCREENSHOT_DIR ?? path.join(os.tmpdir(), 'confidant-firefox-screenshots');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${name}.png`) as `${string}.png`;
  await page.screenshot({ path: file });
  console.log(`screenshot: ${file}`);
  return file;
}
