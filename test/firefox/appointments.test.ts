/**
 * A demo patient in Firefox ESR signs in, books a consultation, finds it under Upcoming and
 * cancels it, against the real service.
 */
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { demoPerson, startService, stopAndCheck, type RunningService } from '../browser/support';
import {
  FirefoxPageWatch,
  aria,
  byLabel,
  expectHeading,
  expectPath,
  explainFailure,
  getIn,
  launchFirefox,
  screenshot,
  selectByText,
  sessionIn,
  signInPatient,
  timeAtLeast,
  withText,
} from './support';

let service: RunningService | undefined;
let firefox: Browser | undefined;
const watch = new FirefoxPageWatch();
let chloe: Page | undefined;

const CHLOE = demoPerson('chloe@demo.confidant.test');
const PATEL = demoPerson('dr.patel@demo.confidant.test');

beforeAll(async () => {
  [service, firefox] = await Promise.all([startService(), launchFirefox()]);
  console.log(`firefox: ${await firefox.version()}`);
});

afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail') await explainFailure(chloe, 'chloe');
  watch.assertClean();
});

afterAll(async () => {
  await watch.close();
  await firefox?.close();
  await stopAndCheck(service);
});

/** The appointment in the Upcoming, "Cancelled and moved" or Past list whose heading shows that instant. */
const listItem = (list: 'upcoming' | 'cancelled' | 'past', startsAt: string) => `ul[aria-labelledby="${list}-heading"] > li:has(h3 time[datetime="${startsAt}"])`;

test('Chloe signs in, books an audio consultation with Dr Patel, sees it under Upcoming and cancels it', async () => {
  chloe = await watch.page(firefox!);
  const base = service!.baseUrl;
  const reason = `Rash on both forearms since Tuesday (${Date.now().toString(36)})`;

  await signInPatient(chloe, base, CHLOE.email);
  const session = await sessionIn(chloe);
  expect(session.authenticated).toBe(true);
  expect(session.account?.displayName).toBe(CHLOE.displayName);

  // From her home page to the booking form.
  await chloe.locator(aria('link', 'Book a consultation')).click();
  await expectPath(chloe, '/patient/book');
  await expectHeading(chloe, 'Book a consultation');
  await selectByText(chloe, 'GP', PATEL.displayName);
  // A time at least half an hour away, so it cannot pass while the test runs.
  const { radio, clinicianId, startsAt } = await timeAtLeast(chloe, 30 * 60_000);
  await radio.click();
  expect(await radio.evaluate((r) => r.checked)).toBe(true);
  const audioOnly = await byLabel(chloe, 'Audio only');
  await audioOnly.click();
  expect(await audioOnly.evaluate((r) => (r as HTMLInputElement).checked)).toBe(true);
  await (await byLabel(chloe, 'Reason for the consultation')).type(reason);
  await withText(chloe, '.booking-summary', new RegExp(PATEL.displayName));
  await chloe.locator(aria('button', 'Book consultation')).click();

  // Her appointments: the new one under Upcoming, with what she booked.
  await expectPath(chloe, '/patient/appointments');
  await expectHeading(chloe, 'Your appointments');
  await withText(chloe, '.notice', new RegExp(`^Your audio only consultation with ${PATEL.displayName} is booked for `, 'i'));
  const booked = await chloe.waitForSelector(listItem('upcoming', startsAt));
  const bookedText = await booked!.evaluate((li) => (li as HTMLElement).innerText);
  for (const expected of [reason, PATEL.displayName, 'Audio only', 'Booked']) expect(bookedText).toContain(expected);
  await screenshot(chloe, 'firefox-patient-appointments-booked');
  // The service holds the same booking.
  const mine = JSON.parse((await getIn(chloe, '/api/appointments')).text) as {
    upcoming: { id: string; startsAt: string; status: string; clinician: { id: string } }[];
  };
  const held = mine.upcoming.find((a) => a.startsAt === startsAt);
  expect(held).toMatchObject({ status: 'booked', clinician: { id: clinicianId } });

  // She cancels it: it moves to "Cancelled and moved" (its time is still ahead), cancelled by her, and the service agrees.
  await (await booked!.waitForSelector(aria('button', 'Cancel')))!.click();
  const dialog = await chloe.waitForSelector('dialog[open]');
  expect(await dialog!.evaluate((d) => d.querySelector('h2')?.textContent?.trim())).toBe('Cancel this consultation?');
  await (await dialog!.waitForSelector(aria('button', 'Yes, cancel it')))!.click();
  await chloe.waitForSelector('dialog[open]', { hidden: true });
  await withText(chloe, '.notice', /^Your consultation on .* has been cancelled\.$/);
  const cancelled = await chloe.waitForSelector(listItem('cancelled', startsAt));
  await chloe.waitForFunction((li) => (li as HTMLElement).innerText.includes('Cancelled by you'), { polling: 100 }, cancelled!);
  expect(await chloe.$(listItem('upcoming', startsAt))).toBeNull();
  expect(await chloe.$(listItem('past', startsAt))).toBeNull();
  const after = JSON.parse((await getIn(chloe, `/api/appointments/${held!.id}`)).text) as { status: string; cancelledBy: string | null };
  expect(after).toMatchObject({ status: 'cancelled', cancelledBy: 'patient' });
  await screenshot(chloe, 'firefox-patient-appointments-cancelled');
});
