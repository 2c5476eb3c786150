/**
 * Booking as a patient meets it: "any GP" names the GP on every time and reaches the end of the
 * booking horizon; each day is a radio group of its own for keyboard users; a time the patient
 * already holds is never offered; at the booking limit the page says so before the form; and
 * the appointments list says when "Join" opens.
 */
import { randomBytes } from 'node:crypto';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import {
  PageWatch,
  demoPerson,
  expectHeading,
  expectPath,
  fetchIn,
  launchBrowser,
  screenshot,
  startService,
  stopAndCheck,
  type RunningService,
} from './support';

let service: RunningService | undefined;
let browser: Browser | undefined;
const watch = new PageWatch();
const PATEL = demoPerson('dr.patel@demo.confidant.test');
const HUGHES = demoPerson('dr.hughes@demo.confidant.test');
/** The demo clinic's zone and booking horizon (the service's defaults). */
const CLINIC_ZONE = 'Europe/London';
const HORIZON_DAYS = 14;

beforeAll(async () => {
  [service, browser] = await Promise.all([startService(), launchBrowser()]);
});

afterEach(() => watch.assertClean());

afterAll(async () => {
  await browser?.close();
  await stopAndCheck(service);
});

interface Slot {
  clinicianId: string;
  clinicianName: string;
  startsAt: string;
}

function clinicDate(iso: string): string {
  return new Intl.DateTimeFormat('en-CA', { timeZone: CLINIC_ZONE, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date(iso));
}

/** A new patient, registered and signed in through the API from inside the page, with no bookings. */
async function newPatient(context: BrowserContext): Promise<Page> {
  const page = await context.newPage();
  await page.goto('/sign-in');
  const answer = await fetchIn(page, 'POST', '/api/auth/register', {
    givenName: 'Iris',
    familyName: 'Okafor',
    dateOfBirth: '1984-05-02',
    email: `iris.${randomBytes(4).toString('hex')}@example.com`,
    password: `amber-lantern-willow-${randomBytes(3).toString('hex')}`,
  });
  expect(answer.status, answer.text).toBe(201);
  return page;
}

async function slotsOf(page: Page, clinicianId: string): Promise<Slot[]> {
  const answer = await fetchIn(page, 'GET', `/api/slots?clinicianId=${clinicianId}&limit=500`);
  expect(answer.status, answer.text).toBe(200);
  return (JSON.parse(answer.text) as { slots: Slot[] }).slots;
}

async function clinicianIds(page: Page): Promise<Map<string, string>> {
  const answer = await fetchIn(page, 'GET', '/api/clinicians');
  const { clinicians } = JSON.parse(answer.text) as { clinicians: { id: string; displayName: string }[] };
  return new Map(clinicians.map((c) => [c.displayName, c.id]));
}

const startsAtOf = async (radio: Locator) => (await radio.getAttribute('value'))!.split('|')[1]!;

test('"any GP" names the GP on each time, lists each time once, and reaches the end of the horizon; each day is its own radio group', async () => {
  const context = await watch.context(browser!, service!.baseUrl);
  const page = await newPatient(context);
  await page.goto('/patient/book');
  await expectHeading(page, 'Book a consultation');
  const picker = page.getByRole('group', { name: 'Time', exact: true });
  const days = picker.getByRole('group');
  await days.first().getByRole('radio').first().waitFor();
  expect(await days.count(), 'three days at first').toBe(3);

  // Every time says which GP it is with, before it is chosen.
  const firstDayRadios = days.first().getByRole('radio');
  for (let i = 0; i < Math.min(5, await firstDayRadios.count()); i++) {
    const label = await firstDayRadios.nth(i).evaluate((el) => (el as HTMLInputElement).labels?.[0]?.innerText ?? '');
    expect(label, 'the time names its GP').toMatch(new RegExp(`${PATEL.displayName}|${HUGHES.displayName}`));
  }

  // Later days come a few at a time, loaded as needed, up to the last bookable day.
  const later = picker.getByRole('button', { name: 'Show later days', exact: true });
  for (let clicks = 0; (await later.count()) > 0; clicks++) {
    expect(clicks, 'the horizon is reached in a handful of clicks').toBeLessThan(10);
    const before = await days.count();
    await later.click();
    await expect.poll(() => days.count()).toBeGreaterThan(before);
    await picker.getByText('Loading later days…').waitFor({ state: 'detached' });
  }
  const radios = picker.getByRole('radio');
  const times = await radios.evaluateAll((els) => els.map((el) => (el as HTMLInputElement).value.split('|')[1]!));
  expect(new Set(times).size, 'each time once').toBe(times.length);
  const today = clinicDate(new Date().toISOString());
  const lastDay = new Date(`${today}T12:00:00Z`);
  lastDay.setUTCDate(lastDay.getUTCDate() + HORIZON_DAYS);
  expect(clinicDate(times[times.length - 1]!), 'the last time offered is on the last bookable day').toBe(lastDay.toISOString().slice(0, 10));
  expect(await days.count()).toBeGreaterThanOrEqual(HORIZON_DAYS);

  // Keyboard: arrows stay within a day; Tab leaves for the next day (past its "Show all" button).
  // The first day with two times or more (late in the evening today may have one left).
  let first = 0;
  while ((await days.nth(first).getByRole('radio').count()) < 2) first++;
  const dayOne = days.nth(first).getByRole('radio');
  const dayTwo = days.nth(first + 1).getByRole('radio');
  const names = async (group: Locator) => new Set(await group.evaluateAll((els) => els.map((el) => (el as HTMLInputElement).name)));
  expect((await names(dayOne)).size, 'one radio group per day').toBe(1);
  expect([...(await names(dayOne))][0]).not.toBe([...(await names(dayTwo))][0]);
  await dayOne.first().focus();
  await page.keyboard.press('ArrowRight');
  const focusedName = () => page.evaluate(() => (document.activeElement as HTMLInputElement | null)?.name ?? '');
  const focusedValue = () => page.evaluate(() => (document.activeElement as HTMLInputElement | null)?.value ?? '');
  expect(await focusedName()).toBe([...(await names(dayOne))][0]);
  expect(await focusedValue()).toBe(await dayOne.nth(1).getAttribute('value'));
  let tabs = 0;
  while ((await focusedName()) !== [...(await names(dayTwo))][0]) {
    await page.keyboard.press('Tab');
    tabs++;
    expect(tabs, 'the next day is at most two Tabs away').toBeLessThanOrEqual(2);
  }
  await screenshot(page, 'book-any-gp');
  await context.close();
});

test('a time the patient already holds is not offered; at the limit the booking page says so first; "Join" says when it opens', async () => {
  const context = await watch.context(browser!, service!.baseUrl);
  const page = await newPatient(context);
  const ids = await clinicianIds(page);
  const patelId = ids.get(PATEL.displayName)!;
  const hughesId = ids.get(HUGHES.displayName)!;
  // Tomorrow, at a time both GPs are free: one booking with each, ten minutes apart.
  const tomorrow = new Date(`${clinicDate(new Date().toISOString())}T12:00:00Z`);
  tomorrow.setUTCDate(tomorrow.getUTCDate() + 1);
  const day = tomorrow.toISOString().slice(0, 10);
  const patelTimes = (await slotsOf(page, patelId)).filter((s) => clinicDate(s.startsAt) === day).map((s) => s.startsAt);
  const hughesTimes = new Set((await slotsOf(page, hughesId)).map((s) => s.startsAt));
  const both = patelTimes.filter((t) => hughesTimes.has(t));
  expect(both.length, 'both GPs have free times tomorrow').toBeGreaterThan(3);
  const [withPatel, withHughes] = [both[0]!, both[1]!];
  for (const [clinicianId, startsAt] of [
    [patelId, withPatel],
    [hughesId, withHughes],
  ] as const) {
    const booked = await fetchIn(page, 'POST', '/api/appointments', { clinicianId, startsAt, mode: 'video', reason: 'Rash on both arms' });
    expect(booked.status, booked.text).toBe(201);
  }

  // Two upcoming is the limit: the booking page says so before any form, and leads to the list.
  await page.goto('/patient/book');
  await expectHeading(page, 'Book a consultation');
  await page.getByText(/^You already have 2 upcoming consultations, the most you can hold at a time \(2\)\./).waitFor();
  expect(await page.getByRole('button', { name: 'Book consultation' }).count()).toBe(0);
  await screenshot(page, 'book-at-the-limit');
  await page.getByRole('link', { name: 'Manage your appointments', exact: true }).click();
  await expectPath(page, '/patient/appointments');
  await expectHeading(page, 'Your appointments');

  const upcoming = page.getByRole('list', { name: 'Upcoming', exact: true });
  const patelItem = upcoming.locator(':scope > li').filter({ has: page.locator(`h3 time[datetime="${withPatel}"]`) });
  await patelItem.getByText(/^You can join from \d{1,2}:\d\d.*, 10 minutes before the start\./).waitFor();

  // Moving the booking with Dr Patel never offers the time held with Dr Hughes, though Dr Patel is free then.
  expect(patelTimes).toContain(withHughes);
  await patelItem.getByRole('button', { name: 'Reschedule', exact: true }).click();
  const panel = patelItem.getByRole('region', { name: `Choose a new time with ${PATEL.displayName}` });
  const tomorrowGroup = panel.getByRole('group', { name: /^Tomorrow, / });
  await tomorrowGroup.getByRole('radio').first().waitFor();
  const showAll = tomorrowGroup.getByRole('button', { name: /^Show all \d+ times/ });
  if ((await showAll.count()) > 0) await showAll.click();
  const offered = await tomorrowGroup.getByRole('radio').evaluateAll((els) => els.map((el) => (el as HTMLInputElement).value.split('|')[1]!));
  expect(offered.length).toBeGreaterThan(2);
  expect(offered, 'the time held with Dr Hughes').not.toContain(withHughes);
  expect(offered, 'its own current time').not.toContain(withPatel);
  expect(offered).toContain(both[2]);
  expect(await startsAtOf(tomorrowGroup.getByRole('radio').first())).not.toBe(withHughes);
  await context.close();
});
