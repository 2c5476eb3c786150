import type { Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import {
  PageWatch,
  demoPerson,
  enterTotp,
  expectHeading,
  expectPath,
  freshTotp,
  launchBrowser,
  screenshot,
  sessionIn,
  signInPatient,
  signInStaff,
  signInWithPassword,
  startService,
  stopAndCheck,
  wrongTotp,
  type RunningService,
} from './support';

let service: RunningService | undefined;
let browser: Browser | undefined;
const watch = new PageWatch();
/** Set by the clinician test; the DPO test looks for this account's sign-in in the audit trail. */
let clinicianId: string | undefined;

const CLINICIAN = 'dr.patel@demo.confidant.test';
const DPO = 'dpo@demo.confidant.test';
const ADMIN = 'admin@demo.confidant.test';

beforeAll(async () => {
  [service, browser] = await Promise.all([startService(), launchBrowser()]);
});

afterEach(() => watch.assertClean());

afterAll(async () => {
  await browser?.close();
  await stopAndCheck(service);
});

test('a clinician signs in with an authenticator code; a wrong code is refused first', async () => {
  const context = await watch.context(browser!, service!.baseUrl);
  const page = await context.newPage();
  const clinician = demoPerson(CLINICIAN);

  await signInWithPassword(page, CLINICIAN, clinician.password);
  await expectPath(page, '/sign-in/mfa');
  // Half-way through sign-in, the clinician's page is not reachable yet.
  expect((await sessionIn(page)).authenticated).toBe(true);

  await enterTotp(page, wrongTotp(clinician.totpSecret!));
  const codeInput = page.getByLabel('Authenticator code', { exact: true });
  await expect.poll(() => codeInput.getAttribute('aria-invalid')).toBe('true');
  const fieldError = page.locator('.field', { has: codeInput }).locator('.field__error');
  expect((await fieldError.innerText()).trim()).not.toBe('');
  expect(new URL(page.url()).pathname).toBe('/sign-in/mfa');
  await page.goto('/clinician');
  await expectPath(page, '/sign-in/mfa');

  await enterTotp(page, await freshTotp(clinician.totpSecret!));
  await expectPath(page, '/clinician');
  await expectHeading(page, "Today's consultations");
  // The clinic day leads; colleagues are a page of their own.
  await page.getByRole('heading', { level: 2 }).getByText('(today)').waitFor();
  expect(await page.getByRole('table', { name: 'Colleagues' }).count()).toBe(0);
  await screenshot(page, 'clinician-home');
  await page.getByRole('main').getByRole('link', { name: 'Colleagues', exact: true }).click();
  await expectPath(page, '/clinician/colleagues');
  await expectHeading(page, 'Colleagues');
  await page.getByRole('table', { name: 'Colleagues' }).getByText(`${clinician.displayName} (you)`).waitFor();
  await page.getByRole('link', { name: "Back to today's consultations" }).click();
  await expectHeading(page, "Today's consultations");

  const session = await sessionIn(page);
  expect(session.account?.displayName).toBe(clinician.displayName);
  clinicianId = session.account?.id;
  await context.close();
});

test("the DPO signs in with TOTP, sees the clinician's sign-in in the audit trail and verifies the chain", async () => {
  expect(clinicianId, 'the clinician test runs first').toBeTruthy();
  // Amara watches her demo replay: the DPO will see which seconds she was sent.
  const amaraContext = await watch.context(browser!, service!.baseUrl);
  const amara = await amaraContext.newPage();
  await signInPatient(amara, 'amara@demo.confidant.test');
  const amaraId = (await sessionIn(amara)).account!.id;
  await amara.goto('/patient/replays');
  await amara.getByRole('link', { name: /^Play / }).first().click();
  await amara
    .locator('video')
    .evaluate((v: HTMLVideoElement) => new Promise<void>((resolve) => (v.readyState >= 1 ? resolve() : v.addEventListener('loadedmetadata', () => resolve(), { once: true }))));
  await amaraContext.close();

  const context = await watch.context(browser!, service!.baseUrl);
  const page = await context.newPage();

  await signInStaff(page, DPO, '/dpo');
  await expectHeading(page, 'Audit trail');

  const events = page.getByRole('region', { name: 'Audit events' });
  await events.waitFor();
  await expect.poll(() => page.getByText(/^Showing \d+ events?, newest first\.$/).count()).toBe(1);
  // The clinician's successful password step, by the clinician's account, is in the trail…
  const clinicianSignIn = events
    .getByRole('row')
    .filter({ hasText: 'auth.sign_in' })
    .filter({ hasText: clinicianId! });
  expect(await clinicianSignIn.count()).toBeGreaterThanOrEqual(1);
  // …and so is their refused authenticator code.
  const refusedCode = events
    .getByRole('row')
    .filter({ hasText: 'auth.mfa_verify' })
    .filter({ hasText: 'Failure' })
    .filter({ hasText: clinicianId! });
  expect(await refusedCode.count()).toBe(1);

  // Filtering by actor and action narrows the trail to exactly those events.
  await page.getByLabel('Action', { exact: true }).fill('auth.sign_in');
  await page.getByLabel('Actor ID', { exact: true }).fill(clinicianId!);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await expect.poll(() => page.getByText('Showing 1 event, newest first.').count()).toBe(1);
  const rows = events.locator('tbody tr');
  expect(await rows.count()).toBe(1);
  expect(await rows.first().innerText()).toContain('auth.sign_in');
  await page.getByRole('button', { name: 'Clear filters', exact: true }).click();
  await expect.poll(() => page.getByText(/^Showing \d+ events?, newest first\.$/).count()).toBe(1);

  // Amara's replay: which seconds of the recording, and which bytes, each request was sent.
  await page.getByLabel('Action', { exact: true }).fill('recording.play');
  await page.getByLabel('Patient ID', { exact: true }).fill(amaraId);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await expect.poll(() => events.locator('tbody tr').count()).toBeGreaterThanOrEqual(1);
  const played = await events.locator('tbody tr').first().innerText();
  expect(played).toContain('recording.play');
  expect(played).toMatch(/\d+:\d\d–\d+:\d\d; [\d,]+ bytes \(\d+-\d+\)/);
  await page.getByRole('button', { name: 'Clear filters', exact: true }).click();
  await expect.poll(() => page.getByText(/^Showing \d+ events?, newest first\.$/).count()).toBe(1);

  await page.getByRole('button', { name: 'Verify audit chain', exact: true }).click();
  const result = page.getByTestId('audit-verify-result');
  await result.getByText('Audit chain intact.').waitFor();
  expect(await result.innerText()).toMatch(/Audit chain intact\. \d+ events? checked, up to event \d+\./);
  await screenshot(page, 'dpo-home', { fullPage: false });
  await screenshot(page, 'dpo-home-full');
  await context.close();
});

test('the practice manager signs in with TOTP; the same code cannot be used twice', async () => {
  const context = await watch.context(browser!, service!.baseUrl);
  const page = await context.newPage();
  const admin = demoPerson(ADMIN);
  const code = await signInStaff(page, ADMIN, '/admin');
  await expectHeading(page, 'Staff');
  await page.getByRole('table', { name: 'Staff' }).getByText(demoPerson(CLINICIAN).displayName).waitFor();
  await screenshot(page, 'admin-home');

  // Someone who saw that code (over a shoulder, in a phishing page) cannot replay it.
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await expectPath(page, '/sign-in');
  await signInWithPassword(page, ADMIN, admin.password);
  await expectPath(page, '/sign-in/mfa');
  await enterTotp(page, code);
  const codeInput = page.getByLabel('Authenticator code', { exact: true });
  await expect.poll(() => codeInput.getAttribute('aria-invalid')).toBe('true');
  expect(new URL(page.url()).pathname).toBe('/sign-in/mfa');
  await page.goto('/admin');
  await expectPath(page, '/sign-in/mfa');
  await context.close();
});
