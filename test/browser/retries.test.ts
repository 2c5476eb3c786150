/**
 * The web app's retries (issue 13), in real Chromium against the real service: a change sent
 * with an Idempotency-Key is tried again after a 503 that says the service was briefly
 * unavailable (or that the outcome is unknown), with the same key, after the server's
 * Retry-After; the server answers the retry from the first attempt when that one was saved, so
 * nothing happens twice. A change sent without a key is never repeated behind the user's back.
 *
 * The failures are made by Playwright's request interception (`page.route`), which answers the
 * browser in the service's place: the service itself is healthy throughout.
 */
import { randomBytes } from 'node:crypto';
import type { Browser, BrowserContext, Locator, Page, Request, Route } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import {
  PageWatch,
  demoPerson,
  expectHeading,
  expectPath,
  fetchIn,
  launchBrowser,
  screenshot,
  signInPatient,
  sleep,
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

// The service's own wording for these failures (src/http/database-failure.ts).
const OUTCOME_UNKNOWN_MESSAGE =
  'We lost contact with our database while saving, so we cannot tell whether your change was saved. Check before trying again.';
const UNAVAILABLE_MESSAGE = 'The service is briefly unavailable. Please try again in a moment.';

beforeAll(async () => {
  [service, browser] = await Promise.all([startService(), launchBrowser()]);
});

afterEach(() => watch.assertClean());

afterAll(async () => {
  await browser?.close();
  await stopAndCheck(service);
});

interface Appointment {
  id: string;
  clinician: { id: string; displayName: string };
  startsAt: string;
  status: string;
  reason: string;
  cancelledBy: string | null;
}

interface AppointmentLists {
  upcoming: Appointment[];
  past: Appointment[];
}

interface Notification {
  kind: 'appointment_booked' | 'appointment_cancelled' | 'appointment_rescheduled';
  appointmentId: string | null;
}

/** One request the page sent to an intercepted route, and what the browser was answered. */
interface Attempt {
  key: string | undefined;
  sentAt: number;
  answer?: { status: number; replayed: string | undefined; body: string };
}

function failure(code: string, message: string, requestId: string): string {
  return JSON.stringify({ error: { code, message, requestId } });
}

/**
 * Intercepts the page's `method` requests to `url`. The first one is handled by `first` (which
 * answers the browser with a failure, after or without letting the request reach the service);
 * every later one goes through to the service untouched. Returns the attempts as they happen.
 */
async function interceptFirst(
  page: Page,
  url: string,
  method: string,
  first: (route: Route) => Promise<void>,
): Promise<Attempt[]> {
  const attempts: Attempt[] = [];
  const byRequest = new Map<Request, Attempt>();
  await page.route(url, async (route) => {
    const request = route.request();
    if (request.method() !== method) return route.fallback();
    const headers = await request.allHeaders();
    const attempt: Attempt = { key: headers['idempotency-key'], sentAt: Date.now() };
    attempts.push(attempt);
    byRequest.set(request, attempt);
    if (attempts.length === 1) return first(route);
    return route.fallback();
  });
  page.on('response', async (response) => {
    const attempt = byRequest.get(response.request());
    if (!attempt) return;
    const headers = await response.allHeaders();
    attempt.answer = { status: response.status(), replayed: headers['idempotent-replayed'], body: await response.text() };
  });
  return attempts;
}

/** Waits until the page has settled on one of two outcomes (whichever shows first). */
async function settled(either: Locator, or: Locator): Promise<void> {
  await either.or(or).first().waitFor({ timeout: 20_000 });
}

async function appointmentsOf(page: Page): Promise<AppointmentLists> {
  const answer = await fetchIn(page, 'GET', '/api/appointments');
  expect(answer.status, answer.text).toBe(200);
  return JSON.parse(answer.text) as AppointmentLists;
}

async function notificationsOf(page: Page): Promise<Notification[]> {
  const answer = await fetchIn(page, 'GET', '/api/notifications');
  expect(answer.status, answer.text).toBe(200);
  return (JSON.parse(answer.text) as { notifications: Notification[] }).notifications;
}

/** A time chip's radio: its value is "clinicianId|startsAt". */
async function startsAtOf(radio: Locator): Promise<string> {
  const value = await radio.getAttribute('value');
  const startsAt = value?.split('|')[1];
  expect(startsAt, `slot radio value ${value}`).toBeTruthy();
  return startsAt!;
}

/** The appointment in a list (Upcoming or Past) whose heading shows that time. */
function item(list: Locator, startsAt: string): Locator {
  return list.locator(':scope > li').filter({ has: list.page().locator(`h3 time[datetime="${startsAt}"]`) });
}

test('a booking whose answer was lost while it committed is retried with the same key and booked once', async () => {
  let context: BrowserContext | undefined;
  try {
    context = await watch.context(browser!, service!.baseUrl);
    const page = await context.newPage();
    const reason = `Sore throat and fever for three days (${randomBytes(3).toString('hex')})`;
    await signInPatient(page, AMARA.email);
    const before = await appointmentsOf(page);

    await page.goto('/patient/book');
    await expectHeading(page, 'Book a consultation');
    await page.getByLabel('GP', { exact: true }).selectOption({ label: PATEL.displayName });
    const choice = page.getByRole('group', { name: /^Tomorrow, / }).getByRole('radio').first();
    await choice.check();
    const bookedAt = await startsAtOf(choice);
    await page.getByRole('group', { name: 'Consultation type', exact: true }).getByRole('radio', { name: 'Video', exact: true }).check();
    await page.getByLabel('Reason for the consultation', { exact: true }).fill(reason);

    // The first attempt reaches the service and is saved (201), but the patient's browser is
    // told what it hears when the connection drops during COMMIT.
    let saved: { status: number; body: string } | undefined;
    let answeredFirstAt = 0;
    const attempts = await interceptFirst(page, '**/api/appointments', 'POST', async (route) => {
      const real = await route.fetch();
      saved = { status: real.status(), body: await real.text() };
      answeredFirstAt = Date.now();
      await route.fulfill({
        status: 503,
        contentType: 'application/json; charset=utf-8',
        headers: { 'retry-after': '1', 'cache-control': 'no-store' },
        body: failure('outcome_unknown', OUTCOME_UNKNOWN_MESSAGE, 'req-lost-at-commit'),
      });
    });

    await page.getByRole('button', { name: 'Book consultation', exact: true }).click();
    await settled(page.getByRole('heading', { level: 1, name: 'Your appointments', exact: true }), page.getByRole('alert'));
    await screenshot(page, 'retries-booking-after-lost-commit');

    expect(saved?.status, `the first attempt, as the service answered it: ${saved?.body}`).toBe(201);
    expect(attempts.length, 'the web app tried the booking again by itself after outcome_unknown').toBe(2);
    const [first, second] = attempts as [Attempt, Attempt];
    expect(first.key, 'the booking carries an Idempotency-Key').toMatch(/^[A-Za-z0-9_.:-]{1,100}$/);
    expect(second.key, 'the retry carries the same Idempotency-Key').toBe(first.key);
    await expect.poll(() => first.answer?.status, { message: 'the browser saw the lost-commit answer first' }).toBe(503);
    expect(second.sentAt - answeredFirstAt, "the retry waited for the server's Retry-After (1 s)").toBeGreaterThanOrEqual(900);
    await expect.poll(() => second.answer?.status).toBe(201);
    expect(second.answer!.replayed, 'the retry was answered from the first attempt').toBe('true');
    expect(JSON.parse(second.answer!.body), 'the replay is the first attempt\'s answer').toEqual(JSON.parse(saved!.body));
    const booked = JSON.parse(saved!.body) as Appointment;
    expect(booked.startsAt).toBe(bookedAt);

    // The patient sees a plain booking, with no trace of the failure.
    await expectPath(page, '/patient/appointments');
    await page.getByText(/^Your video consultation with Dr Priya Patel is booked for /).waitFor();
    const upcoming = page.getByRole('list', { name: 'Upcoming', exact: true });
    await item(upcoming, bookedAt).waitFor();
    expect(await item(upcoming, bookedAt).count()).toBe(1);
    expect(await page.getByRole('alert').count()).toBe(0);
    await screenshot(page, 'retries-booked-once');

    // Booked once: one appointment at that time, one more than before, one notification.
    const after = await appointmentsOf(page);
    expect(after.upcoming.filter((a) => a.startsAt === bookedAt).map((a) => a.id)).toEqual([booked.id]);
    expect(after.upcoming.length).toBe(before.upcoming.length + 1);
    expect([...after.upcoming, ...after.past].filter((a) => a.reason === reason).length).toBe(1);
    const notices = await notificationsOf(page);
    expect(notices.filter((n) => n.kind === 'appointment_booked' && n.appointmentId === booked.id).length).toBe(1);
    expect(attempts.length, 'no further attempt after the answer').toBe(2);
  } finally {
    await context?.close();
  }
});

test('a cancellation refused by an unavailable database is retried and cancels once; a name change is not repeated', async () => {
  let context: BrowserContext | undefined;
  try {
    context = await watch.context(browser!, service!.baseUrl);
    const page = await context.newPage();
    await signInPatient(page, BEN.email);

    // Ben has no upcoming consultation: one is booked for him directly, more than an hour ahead
    // so that it can still be cancelled however long the test takes.
    const { clinicians } = JSON.parse((await fetchIn(page, 'GET', '/api/clinicians')).text) as {
      clinicians: { id: string; displayName: string }[];
    };
    const patel = clinicians.find((c) => c.displayName === PATEL.displayName);
    expect(patel, JSON.stringify(clinicians)).toBeTruthy();
    const slotsAnswer = await fetchIn(page, 'GET', `/api/slots?clinicianId=${patel!.id}&days=3`);
    const { slots } = JSON.parse(slotsAnswer.text) as { slots: { clinicianId: string; startsAt: string }[] };
    const slot = slots.find((s) => new Date(s.startsAt).getTime() > Date.now() + 3_600_000);
    expect(slot, slotsAnswer.text).toBeTruthy();
    const bookedAnswer = await fetchIn(page, 'POST', '/api/appointments', {
      clinicianId: slot!.clinicianId,
      startsAt: slot!.startsAt,
      mode: 'audio',
      reason: `Follow-up on blood pressure (${randomBytes(3).toString('hex')})`,
    });
    expect(bookedAnswer.status, bookedAnswer.text).toBe(201);
    const appointment = JSON.parse(bookedAnswer.text) as Appointment;

    // The first cancellation never reaches the service: the database was unavailable.
    const attempts = await interceptFirst(page, '**/api/appointments/*/cancel', 'POST', (route) =>
      route.fulfill({
        status: 503,
        contentType: 'application/json; charset=utf-8',
        headers: { 'retry-after': '1', 'cache-control': 'no-store' },
        body: failure('database_unavailable', UNAVAILABLE_MESSAGE, 'req-database-down'),
      }),
    );

    await page.goto('/patient/appointments');
    await expectHeading(page, 'Your appointments');
    const upcoming = page.getByRole('list', { name: 'Upcoming', exact: true });
    const cancelled = page.getByRole('list', { name: 'Cancelled and moved', exact: true });
    const booked = item(upcoming, appointment.startsAt);
    await booked.getByRole('button', { name: 'Cancel', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'Cancel this consultation?' });
    await dialog.getByRole('button', { name: 'Yes, cancel it', exact: true }).click();
    const cancelledNotice = page.getByText(/^Your consultation on .* has been cancelled\.$/);
    await settled(cancelledNotice, dialog.getByText(UNAVAILABLE_MESSAGE));
    await screenshot(page, 'retries-cancelled-after-unavailable');

    expect(attempts.length, 'the web app tried the cancellation again by itself after database_unavailable').toBe(2);
    const [first, second] = attempts as [Attempt, Attempt];
    expect(first.key, 'the cancellation carries an Idempotency-Key').toMatch(/^[A-Za-z0-9_.:-]{1,100}$/);
    expect(second.key, 'the retry carries the same Idempotency-Key').toBe(first.key);
    await expect.poll(() => first.answer?.status, { message: 'the browser saw the unavailable answer first' }).toBe(503);
    await expect.poll(() => second.answer?.status).toBe(200);
    // The first attempt never reached the service, so the retry did the work itself.
    expect(second.answer!.replayed).toBeUndefined();
    expect((JSON.parse(second.answer!.body) as Appointment).status).toBe('cancelled');

    await cancelledNotice.waitFor();
    await item(cancelled, appointment.startsAt).getByText('Cancelled by you', { exact: true }).waitFor();
    expect(await item(upcoming, appointment.startsAt).count()).toBe(0);
    expect(await dialog.count()).toBe(0);

    const lists = await appointmentsOf(page);
    const mine = [...lists.upcoming, ...lists.past].filter((a) => a.id === appointment.id);
    expect(mine.map((a) => [a.status, a.cancelledBy])).toEqual([['cancelled', 'patient']]);
    const notices = await notificationsOf(page);
    expect(notices.filter((n) => n.kind === 'appointment_cancelled' && n.appointmentId === appointment.id).length).toBe(1);

    // A change without a key (the name on his profile) is sent once, and its failure is shown.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Profile', exact: true }).click();
    await expectHeading(page, 'Your profile');
    const profileBefore = JSON.parse((await fetchIn(page, 'GET', '/api/profile')).text) as { givenName: string; familyName: string };
    const renames = await interceptFirst(page, '**/api/profile', 'PATCH', (route) =>
      route.fulfill({
        status: 503,
        contentType: 'application/json; charset=utf-8',
        headers: { 'retry-after': '1', 'cache-control': 'no-store' },
        body: failure('database_unavailable', UNAVAILABLE_MESSAGE, 'req-database-down-again'),
      }),
    );
    await page.getByLabel('Given name', { exact: true }).fill(`${profileBefore.givenName}jamin`);
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.getByRole('alert').getByText(UNAVAILABLE_MESSAGE, { exact: true }).waitFor();
    // Longer than the two retries a keyed change would get (1 s, then 2 s).
    await sleep(3_500);
    await screenshot(page, 'retries-rename-not-repeated');
    expect(renames.length, 'a change without an Idempotency-Key is never repeated').toBe(1);
    expect(renames[0]!.key).toBeUndefined();
    expect(await page.getByText('Your name has been saved.', { exact: true }).count()).toBe(0);
    const profileAfter = JSON.parse((await fetchIn(page, 'GET', '/api/profile')).text) as { givenName: string; familyName: string };
    expect(profileAfter.givenName).toBe(profileBefore.givenName);
  } finally {
    await context?.close();
  }
});
