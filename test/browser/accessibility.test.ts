/**
 * Every page, as each kind of person sees it, at a desktop width and on a 390 px phone: axe-core
 * finds no violation of moderate impact or worse, and nothing needs scrolling sideways (neither
 * the page nor a table's scroll region).
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import {
  PageWatch,
  demoPerson,
  expectAccessible,
  expectHeading,
  expectPath,
  fetchIn,
  launchBrowser,
  screenshot,
  sessionIn,
  signInPatient,
  signInStaff,
  signInWithPassword,
  startService,
  stopAndCheck,
  type RunningService,
} from './support';

let service: RunningService | undefined;
let browser: Browser | undefined;
const watch = new PageWatch();

const AMARA = demoPerson('amara@demo.confidant.test');
const BEN = demoPerson('ben@demo.confidant.test');
const PATEL = demoPerson('dr.patel@demo.confidant.test');
const HUGHES = demoPerson('dr.hughes@demo.confidant.test');

beforeAll(async () => {
  [service, browser] = await Promise.all([startService(), launchBrowser()]);
});

afterEach(() => watch.assertClean());

afterAll(async () => {
  await browser?.close();
  await stopAndCheck(service);
});

async function newPage(): Promise<{ context: BrowserContext; page: Page }> {
  const context = await watch.context(browser!, service!.baseUrl);
  return { context, page: await context.newPage() };
}

/** The clinic's calendar date (YYYY-MM-DD) of an instant. */
function clinicDate(iso: string, timeZone: string, dayOffset = 0): string {
  const d = new Date(new Date(iso).getTime() + dayOffset * 86_400_000);
  return new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(d);
}

test('signed-out pages: sign-in, register, the authenticator step and not-found', async () => {
  const { context, page } = await newPage();
  await page.goto('/sign-in');
  await expectHeading(page, 'Sign in');
  await expectAccessible(page, 'sign-in');

  await page.goto('/register');
  await expectHeading(page, 'Create an account');
  await expectAccessible(page, 'register');

  await page.goto('/no-such-page');
  await page.getByRole('heading', { level: 1 }).waitFor();
  await expectAccessible(page, 'not-found');

  await signInWithPassword(page, HUGHES.email, HUGHES.password);
  await expectPath(page, '/sign-in/mfa');
  await expectHeading(page, 'Enter your code');
  await expectAccessible(page, 'sign-in MFA step');
  await context.close();
});

test("the patient's pages", async () => {
  const { context, page } = await newPage();
  await signInPatient(page, AMARA.email);
  await page.getByRole('region', { name: 'Appointments' }).waitFor();
  await expectAccessible(page, 'patient home');

  await page.goto('/patient/book');
  await expectHeading(page, 'Book a consultation');
  await page.getByLabel('GP', { exact: true }).selectOption({ label: PATEL.displayName });
  await page.locator('.slot-day').first().getByRole('radio').first().check();
  await expectAccessible(page, 'booking, a time with Dr Patel chosen');
  await page.getByLabel('GP', { exact: true }).selectOption({ label: 'Any GP' });
  await page.locator('.slot__gp').first().waitFor();
  await page.locator('.slot-day').first().getByRole('radio').first().check();
  await expectAccessible(page, 'booking with any GP, a time chosen');
  await screenshot(page, 'phone-book-any-gp', { fullPage: false });

  await page.goto('/patient/appointments');
  await expectHeading(page, 'Your appointments');
  const upcoming = page.getByRole('list', { name: 'Upcoming', exact: true });
  await upcoming.getByRole('button', { name: 'Reschedule', exact: true }).first().click();
  await page.locator('.reschedule .slot').first().waitFor();
  await expectAccessible(page, 'appointments, rescheduling an upcoming one');

  await page.goto('/patient/replays');
  await expectHeading(page, 'Consultation replays');
  await page.getByRole('table').waitFor();
  await expectAccessible(page, 'patient replays');
  await screenshot(page, 'phone-patient-replays');

  await page.getByRole('link', { name: /^Play / }).first().click();
  await page.locator('video').waitFor();
  await page.locator('.replay__notes').waitFor();
  await expectAccessible(page, 'replay player');

  await page.goto('/patient/profile');
  await page.locator('.summary-list').waitFor();
  await expectAccessible(page, 'patient profile');

  await page.goto('/account/security');
  await expectHeading(page, 'Account security');
  await page.getByRole('heading', { name: 'Signed-in devices' }).waitFor();
  await page.locator('.device').first().waitFor();
  await expectAccessible(page, 'patient account security');
  await context.close();
});

test("the GP's pages", async () => {
  // Ben books Dr Patel's first free time (today, while the demo GPs' hours last), so her day list has a row to act on.
  const { context: benContext, page: ben } = await newPage();
  await signInPatient(ben, BEN.email);
  const { clinicians } = JSON.parse((await fetchIn(ben, 'GET', '/api/clinicians')).text) as { clinicians: { id: string; displayName: string }[] };
  const patelId = clinicians.find((c) => c.displayName === PATEL.displayName)!.id;
  const slots = JSON.parse((await fetchIn(ben, 'GET', `/api/slots?clinicianId=${patelId}&limit=1`)).text) as {
    timeZone: string;
    slots: { startsAt: string }[];
  };
  const startsAt = slots.slots[0]!.startsAt;
  const booked = await fetchIn(ben, 'POST', '/api/appointments', {
    clinicianId: patelId,
    startsAt,
    mode: 'video',
    reason: 'A rash on both forearms that has spread over the last week and itches at night',
  });
  expect(booked.status, booked.text).toBe(201);
  await benContext.close();

  const { context, page } = await newPage();
  await signInStaff(page, PATEL.email, '/clinician');
  await expectHeading(page, "Today's consultations");
  expect((await sessionIn(page)).account?.id).toBe(patelId);
  const bookedDay = clinicDate(startsAt, slots.timeZone);
  if (bookedDay !== clinicDate(new Date().toISOString(), slots.timeZone)) await page.goto(`/clinician?date=${bookedDay}`);
  await page.getByRole('table', { name: /^Consultations on / }).waitFor();
  await expectAccessible(page, "GP's day list");
  await screenshot(page, 'phone-clinician-day');

  // A week ago Amara had a completed consultation with Dr Patel: its row links to the notes.
  await page.goto(`/clinician?date=${clinicDate(new Date().toISOString(), slots.timeZone, -7)}`);
  await page.getByRole('link', { name: 'Notes', exact: true }).click();
  await page.waitForURL((url) => url.pathname.startsWith('/consultations/'));
  await page.getByRole('heading', { name: `Consultation with ${AMARA.givenName} ${AMARA.familyName}` }).waitFor();
  await page.getByRole('heading', { name: 'Consultation notes' }).waitFor();
  await expectAccessible(page, 'consultation notes');

  // Leave a month ahead, beyond the booking horizon, so that the leave table has a row.
  const leaveStart = new Date(Date.now() + 30 * 86_400_000);
  const leave = await fetchIn(page, 'POST', `/api/clinicians/${patelId}/availability/exceptions`, {
    startsAt: leaveStart.toISOString(),
    endsAt: new Date(leaveStart.getTime() + 86_400_000).toISOString(),
    reason: 'training',
    note: 'Minor surgery course',
  });
  expect(leave.status, leave.text).toBeLessThan(300);
  await page.goto('/clinician/availability');
  await expectHeading(page, 'Your availability');
  await page.getByRole('group', { name: 'Monday', exact: true }).waitFor();
  await page.getByRole('table', { name: 'Leave and blocked time coming up' }).waitFor();
  await expectAccessible(page, "GP's availability");
  await page.getByRole('table', { name: 'Leave and blocked time coming up' }).scrollIntoViewIfNeeded();
  await screenshot(page, 'phone-clinician-leave', { fullPage: false });

  await page.goto('/clinician/colleagues');
  await page.getByRole('table', { name: 'Colleagues' }).waitFor();
  await expectAccessible(page, 'colleagues');
  await screenshot(page, 'phone-clinician-colleagues');

  await page.goto('/clinician/replays');
  await page.getByRole('table').waitFor();
  await expectAccessible(page, "GP's recordings");
  await screenshot(page, 'phone-clinician-replays');
  await context.close();
});

test("the DPO's audit trail", async () => {
  const { context, page } = await newPage();
  await signInStaff(page, 'dpo@demo.confidant.test', '/dpo');
  await expectHeading(page, 'Audit trail');
  await page.getByRole('table', { name: /^Audit events/ }).waitFor();
  await page.getByRole('table', { name: 'Staff' }).waitFor();
  await expectAccessible(page, 'audit trail');
  await page.getByRole('table', { name: /^Audit events/ }).scrollIntoViewIfNeeded();
  await screenshot(page, 'phone-dpo-audit-events', { fullPage: false });
  await context.close();
});

test("the practice manager's pages", async () => {
  const { context, page } = await newPage();
  await signInStaff(page, 'admin@demo.confidant.test', '/admin');
  await expectHeading(page, 'Staff');
  await page.getByRole('table', { name: 'Staff' }).waitFor();
  await page.getByRole('link', { name: `${PATEL.displayName}: weekly hours and leave` }).waitFor();
  await expectAccessible(page, 'staff');
  await screenshot(page, 'phone-admin-home');

  await page.getByRole('link', { name: `${PATEL.displayName}: weekly hours and leave` }).click();
  await expectHeading(page, `Availability: ${PATEL.displayName}`);
  await page.getByRole('group', { name: 'Monday', exact: true }).waitFor();
  // The leave Dr Patel added in the GP's test.
  await page.getByRole('table', { name: 'Leave and blocked time coming up' }).waitFor();
  await expectAccessible(page, "a GP's availability, as the practice manager");
  await context.close();
});
