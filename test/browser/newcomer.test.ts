import { randomBytes } from 'node:crypto';
import type { Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import {
  PageWatch,
  expectHeading,
  expectPath,
  launchBrowser,
  screenshot,
  signInWithPassword,
  startService,
  stopAndCheck,
  type RunningService,
} from './support';

let service: RunningService | undefined;
let browser: Browser | undefined;
const watch = new PageWatch();

beforeAll(async () => {
  [service, browser] = await Promise.all([startService(), launchBrowser()]);
});

afterEach(() => watch.assertClean());

afterAll(async () => {
  await browser?.close();
  await stopAndCheck(service);
});

test('a newcomer registers, stays signed in across a reload, signs out and signs in again', async () => {
  const context = await watch.context(browser!, service!.baseUrl);
  const page = await context.newPage();
  const givenName = 'Nadia';
  const email = `nadia.${randomBytes(4).toString('hex')}@example.com`;
  const goodPassword = `tidal-fennel-quarry-${randomBytes(3).toString('hex')}`;

  // Someone with no session who opens the site lands on sign-in.
  await page.goto('/');
  await expectPath(page, '/sign-in');
  await expectHeading(page, 'Sign in');

  await page.getByRole('link', { name: 'New patient? Create an account' }).click();
  await expectPath(page, '/register');
  await expectHeading(page, 'Create an account');

  await page.getByLabel('Given name', { exact: true }).fill(givenName);
  await page.getByLabel('Family name', { exact: true }).fill('Haddad');
  // Day, month and year in boxes of their own; a date that does not exist is caught at once.
  const born = page.getByRole('group', { name: 'Date of birth', exact: true });
  await born.getByLabel('Day', { exact: true }).fill('31');
  await born.getByLabel('Month', { exact: true }).fill('2');
  await born.getByLabel('Year', { exact: true }).fill('1991');
  await page.getByLabel('Email', { exact: true }).fill(email);
  await page.getByLabel('NHS number (optional)', { exact: true }).fill('');
  const password = page.getByLabel('Password', { exact: true });

  // Too short: the browser catches it. Then long enough for the form's own check, so the
  // server's password policy answers. Both read the same way: a summary linking to the field.
  const summary = page.getByRole('alert').filter({ has: page.locator('.error-summary__title') });
  await password.fill('short');
  await page.getByRole('button', { name: 'Create account', exact: true }).click();
  await summary.getByRole('heading', { name: 'Check the highlighted fields and try again.' }).waitFor();
  await summary.getByRole('link', { name: 'Use at least 12 characters.' }).waitFor();
  await summary.getByRole('link', { name: 'Date of birth must be a real date.' }).click();
  // The link takes the person to the day box.
  await expect.poll(() => born.getByLabel('Day', { exact: true }).evaluate((el) => el === document.activeElement)).toBe(true);
  await born.getByLabel('Day', { exact: true }).fill('23');
  await born.getByLabel('Month', { exact: true }).fill('7');
  await password.fill('password1234');
  await page.getByRole('button', { name: 'Create account', exact: true }).click();
  await expect.poll(() => password.getAttribute('aria-invalid')).toBe('true');
  // The message sits in the password field's own frame, and the input is described by it.
  const fieldError = page.locator('.field', { has: password }).locator('.field__error');
  await fieldError.waitFor();
  expect(await fieldError.innerText()).toMatch(/too common/i);
  await summary.getByRole('heading', { name: 'Check the highlighted fields and try again.' }).waitFor();
  await summary.getByRole('link', { name: /too common/i }).click();
  await expect.poll(() => password.evaluate((el) => el === document.activeElement)).toBe(true);
  const errorId = await fieldError.getAttribute('id');
  expect(errorId).toBeTruthy();
  expect((await password.getAttribute('aria-describedby'))?.split(' ')).toContain(errorId);
  expect(new URL(page.url()).pathname).toBe('/register');
  await screenshot(page, 'register-weak-password');

  await password.fill(goodPassword);
  await page.getByRole('button', { name: 'Create account', exact: true }).click();
  await expectPath(page, '/patient');
  await expectHeading(page, `Hello, ${givenName}`);
  await screenshot(page, 'patient-home');

  // The session survives a reload (cookie, not page memory).
  await page.reload();
  await expectHeading(page, `Hello, ${givenName}`);
  expect(new URL(page.url()).pathname).toBe('/patient');

  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await expectPath(page, '/sign-in');
  await expectHeading(page, 'Sign in');
  await page.getByRole('status').getByText(/^You have signed out\./).waitFor();
  // Signed out for real: the patient page sends them back to sign-in.
  await page.goto('/patient');
  await expectPath(page, '/sign-in');

  await signInWithPassword(page, email, goodPassword);
  await expectPath(page, '/patient');
  await expectHeading(page, `Hello, ${givenName}`);
  await context.close();
});
