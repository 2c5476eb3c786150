import { randomBytes } from 'node:crypto';
import type { Browser, BrowserContext, Locator, Page, Response } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import {
  PageWatch,
  demoPerson,
  expectHeading,
  expectPath,
  fetchIn,
  launchBrowser,
  screenshot,
  sessionIn,
  signInPatient,
  signInStaff,
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
const ADMIN = 'admin@demo.confidant.test';

beforeAll(async () => {
  [service, browser] = await Promise.all([startService(), launchBrowser()]);
});

afterEach(() => watch.assertClean());

afterAll(async () => {
  await browser?.close();
  await stopAndCheck(service);
});

interface BookedAppointment {
  id: string;
  clinician: { id: string; displayName: string };
  startsAt: string;
  status: string;
  cancelledBy: string | null;
}

/** The JSON answer of the next request the page sends to `path` with `method`, while `act` runs. */
async function answerTo(page: Page, method: string, path: RegExp, act: () => Promise<void>): Promise<BookedAppointment> {
  const [response] = await Promise.all([
    page.waitForResponse((r: Response) => r.request().method() === method && path.test(new URL(r.url()).pathname)),
    act(),
  ]);
  expect(response.status(), await response.text()).toBeLessThan(300);
  return (await response.json()) as BookedAppointment;
}

/** The clinic's calendar date (YYYY-MM-DD) of an instant. */
function clinicDate(iso: string, timeZone: string): string {
  return new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date(iso));
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

/** Dr Patel's day list for a clinic date, chosen with the date box (or reloaded, if already shown). */
async function showDay(patel: Page, date: string): Promise<Locator> {
  if (new URL(patel.url()).searchParams.get('date') === date) {
    await patel.reload();
  } else {
    await patel.getByLabel('Date', { exact: true }).fill(date);
    await expect.poll(() => new URL(patel.url()).searchParams.get('date')).toBe(date);
  }
  const table = patel.getByRole('table', { name: /^Consultations on / });
  await table.waitFor();
  return table;
}

test('Amara books, moves and cancels a video consultation with Dr Patel; Ben sees none of it', async () => {
  const contexts: BrowserContext[] = [];
  try {
    const [patelContext, amaraContext, benContext] = await Promise.all([
      watch.context(browser!, service!.baseUrl),
      watch.context(browser!, service!.baseUrl),
      watch.context(browser!, service!.baseUrl),
    ]);
    contexts.push(patelContext, amaraContext, benContext);
    const [patel, amara, ben] = await Promise.all([patelContext.newPage(), amaraContext.newPage(), benContext.newPage()]);
    const reason = `Persistent dry cough for two weeks (${randomBytes(3).toString('hex')})`;

    await Promise.all([
      signInStaff(patel, PATEL.email, '/clinician'),
      signInPatient(amara, AMARA.email),
      signInPatient(ben, BEN.email),
    ]);

    const patelId = (await sessionIn(patel)).account!.id;

    // Dr Patel opens every day, all day, through her availability page.
    await patel.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Availability', exact: true }).click();
    await expectPath(patel, '/clinician/availability');
    await expectHeading(patel, 'Your availability');
    const monday = patel.getByRole('group', { name: 'Monday', exact: true });
    await monday.waitFor();
    if ((await monday.getByLabel(/^From/).count()) === 0) {
      await monday.getByRole('button', { name: 'Add period on Monday', exact: true }).click();
    }
    while ((await monday.getByLabel(/^From/).count()) > 1) {
      await monday.getByRole('button', { name: /^Remove Monday, period \d+$/ }).last().click();
    }
    await monday.getByLabel('From (Monday, period 1)', { exact: true }).fill('00:00');
    await monday.getByLabel('Until (Monday, period 1)', { exact: true }).fill('24:00');
    await monday.getByRole('button', { name: 'Copy Monday to every day', exact: true }).click();
    await patel.getByRole('button', { name: 'Save weekly hours', exact: true }).click();
    await patel.getByText(/^Weekly hours saved\./).waitFor();
    const sunday = patel.getByRole('group', { name: 'Sunday', exact: true });
    expect(await sunday.getByLabel('From (Sunday, period 1)', { exact: true }).inputValue()).toBe('00:00');
    expect(await sunday.getByLabel('Until (Sunday, period 1)', { exact: true }).inputValue()).toBe('24:00');
    expect(await sunday.getByLabel(/^From/).count()).toBe(1);

    // Leave beyond the booking horizon: added to the list, then deleted again.
    const leaveStart = new Date(Date.now() + 30 * 86_400_000);
    const local = (d: Date) =>
      `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}T09:00`;
    await patel.getByLabel(/^Start \(your time zone/).fill(local(leaveStart));
    await patel.getByLabel(/^End \(your time zone/).fill(local(new Date(leaveStart.getTime() + 86_400_000)));
    await patel.getByLabel('Reason', { exact: true }).selectOption('training');
    await patel.getByLabel('Note (optional)', { exact: true }).fill('Minor surgery course');
    await patel.getByRole('button', { name: 'Add leave or blocked time', exact: true }).click();
    const exceptions = patel.getByRole('table', { name: 'Leave and blocked time coming up' });
    await exceptions.getByText('Minor surgery course').waitFor();
    await screenshot(patel, 'clinician-availability');
    await exceptions.getByRole('row').filter({ hasText: 'Minor surgery course' }).getByRole('button', { name: /^Delete / }).click();
    await patel.getByText(/^Training from .* removed\.$/).waitFor();
    expect(await patel.getByText('Minor surgery course').count()).toBe(0);

    // Amara books a video consultation with Dr Patel, from the card on her home page.
    await amara.getByRole('region', { name: 'Appointments' }).getByRole('link', { name: 'Book a consultation', exact: true }).click();
    await expectPath(amara, '/patient/book');
    await expectHeading(amara, 'Book a consultation');
    await amara.getByLabel('GP', { exact: true }).selectOption({ label: PATEL.displayName });
    // Tomorrow, so that the consultation is still in the future when it is moved and cancelled.
    const tomorrow = amara.getByRole('group', { name: /^Tomorrow, / });
    const firstChoice = tomorrow.getByRole('radio').first();
    await firstChoice.check();
    const bookedAt = await startsAtOf(firstChoice);
    await amara.getByRole('group', { name: 'Consultation type', exact: true }).getByRole('radio', { name: 'Video', exact: true }).check();
    await amara.getByLabel('Reason for the consultation', { exact: true }).fill(reason);
    await amara.getByText(`You have ${500 - reason.length} characters remaining`, { exact: true }).waitFor();
    await expect.poll(() => amara.locator('.booking-summary').innerText()).toContain(PATEL.displayName);
    await screenshot(amara, 'patient-book');
    const booked = await answerTo(amara, 'POST', /^\/api\/appointments$/, () =>
      amara.getByRole('button', { name: 'Book consultation', exact: true }).click(),
    );
    expect(booked.startsAt).toBe(bookedAt);
    expect(booked.clinician.id).toBe(patelId);
    await expectPath(amara, '/patient/appointments');
    await expectHeading(amara, 'Your appointments');
    await amara.getByText(/^Your video consultation with Dr Priya Patel is booked for /).waitFor();
    const upcoming = amara.getByRole('list', { name: 'Upcoming', exact: true });
    // A cancelled or moved booking whose time is still ahead is listed apart, not under "Past".
    const cancelled = amara.getByRole('list', { name: 'Cancelled and moved', exact: true });
    const bookedItem = item(upcoming, bookedAt);
    await bookedItem.waitFor();
    const bookedText = await bookedItem.innerText();
    for (const expected of [reason, PATEL.displayName, 'Video', 'Booked']) expect(bookedText).toContain(expected);

    // Dr Patel's day list for that date shows Amara's booking, with her reason.
    const { timeZone } = JSON.parse((await fetchIn(patel, 'GET', '/api/schedule')).text) as { timeZone: string };
    await patel.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Consultations', exact: true }).click();
    await expectHeading(patel, "Today's consultations");
    let day = await showDay(patel, clinicDate(bookedAt, timeZone));
    const amaraRow = day.getByRole('row').filter({ has: patel.locator(`time[datetime="${bookedAt}"]`) });
    await amaraRow.getByText(`${AMARA.givenName} ${AMARA.familyName}`, { exact: true }).waitFor();
    expect(await amaraRow.innerText()).toContain(reason);
    expect(await amaraRow.innerText()).toContain('Video');
    await amaraRow.getByRole('button', { name: 'Cancel', exact: true }).waitFor();
    expect(await amaraRow.getByRole('button', { name: 'Mark completed' }).count()).toBe(0);
    await screenshot(patel, 'clinician-day');

    // Ben sees nothing of it, and the API does not even admit that it exists.
    await ben.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Appointments', exact: true }).click();
    await expectHeading(ben, 'Your appointments');
    // The section headings appear once the list has loaded.
    await ben.getByRole('heading', { name: 'Past', exact: true }).waitFor();
    const benSees = await ben.locator('main').innerText();
    expect(benSees).not.toContain(reason);
    expect(benSees).not.toContain(AMARA.familyName!);
    expect(await ben.locator(`time[datetime="${bookedAt}"]`).count()).toBe(0);
    const peek = await fetchIn(ben, 'GET', `/api/appointments/${booked.id}`);
    expect(peek.status).toBe(404);
    expect(peek.text).not.toContain(reason);
    const meddle = await fetchIn(ben, 'POST', `/api/appointments/${booked.id}/cancel`, {});
    expect(meddle.status).toBe(404);

    // Amara moves it to another time with the same GP.
    await bookedItem.getByRole('button', { name: 'Reschedule', exact: true }).click();
    const panel = bookedItem.getByRole('region', { name: `Choose a new time with ${PATEL.displayName}` });
    const newChoice = panel.getByRole('group', { name: /^Tomorrow, / }).getByRole('radio').first();
    await newChoice.check();
    const movedAt = await startsAtOf(newChoice);
    expect(movedAt).not.toBe(bookedAt);
    const moved = await answerTo(amara, 'POST', /^\/api\/appointments\/[^/]+\/reschedule$/, () =>
      panel.getByRole('button', { name: 'Move to this time', exact: true }).click(),
    );
    expect(moved.startsAt).toBe(movedAt);
    await amara.getByText(/^Your consultation with Dr Priya Patel has been moved from /).waitFor();
    const movedItem = item(upcoming, movedAt);
    await movedItem.waitFor();
    expect(await movedItem.innerText()).toContain(reason);
    expect(await item(upcoming, bookedAt).count()).toBe(0);
    const oldItem = item(cancelled, bookedAt);
    await oldItem.getByText('Moved', { exact: true }).waitFor();
    await screenshot(amara, 'patient-appointments-moved');

    // The day list follows: Amara at the new time, the old time cancelled.
    day = await showDay(patel, clinicDate(movedAt, timeZone));
    const movedRow = day.getByRole('row').filter({ has: patel.locator(`time[datetime="${movedAt}"]`) });
    await movedRow.getByText(`${AMARA.givenName} ${AMARA.familyName}`, { exact: true }).waitFor();
    expect(await movedRow.innerText()).toContain(reason);
    expect(await movedRow.innerText()).toContain('Booked');
    expect(await fetchIn(ben, 'GET', `/api/appointments/${moved.id}`)).toMatchObject({ status: 404 });

    // Amara cancels it; it is listed as cancelled by her (still ahead, so not under "Past").
    await movedItem.getByRole('button', { name: 'Cancel', exact: true }).click();
    const dialog = amara.getByRole('dialog', { name: 'Cancel this consultation?' });
    await dialog.waitFor();
    await screenshot(amara, 'patient-cancel-dialog', { fullPage: false });
    await dialog.getByRole('button', { name: 'Yes, cancel it', exact: true }).click();
    await amara.getByText(/^Your consultation on .* has been cancelled\.$/).waitFor();
    const cancelledItem = item(cancelled, movedAt);
    await cancelledItem.getByText('Cancelled by you', { exact: true }).waitFor();
    expect(await cancelledItem.innerText()).toContain(reason);
    expect(await item(upcoming, movedAt).count()).toBe(0);
    expect(await upcoming.getByText(reason).count()).toBe(0);
    expect(await amara.getByRole('list', { name: 'Past', exact: true }).getByText(reason).count()).toBe(0);
    await screenshot(amara, 'patient-appointments');

    // Dr Patel sees it cancelled; Ben still sees nothing.
    day = await showDay(patel, clinicDate(movedAt, timeZone));
    const cancelledRow = day
      .getByRole('row')
      .filter({ has: patel.locator(`time[datetime="${movedAt}"]`) });
    await cancelledRow.getByText('Cancelled by the patient', { exact: true }).waitFor();
    await ben.reload();
    await ben.getByRole('heading', { name: 'Past', exact: true }).waitFor();
    expect(await ben.locator('main').innerText()).not.toContain(reason);

    // Her home page tells her what happened, newest first; seen notifications are marked read.
    await amara.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Home', exact: true }).click();
    const notifications = amara.getByRole('region', { name: 'Notifications' });
    await notifications.getByText(/^Consultation on .* cancelled\.$/).waitFor();
    await notifications.getByText(/^Consultation moved to /).waitFor();
    expect(await notifications.getByText('New', { exact: true }).count()).toBeGreaterThanOrEqual(3);
    await screenshot(amara, 'patient-home-appointments');
    await expect
      .poll(async () => {
        const list = JSON.parse((await fetchIn(amara, 'GET', '/api/notifications')).text) as { notifications: { read: boolean }[] };
        return list.notifications.filter((n) => !n.read).length;
      })
      .toBe(0);
    await amara.reload();
    await notifications.getByText(/^Consultation on .* cancelled\.$/).waitFor();
    expect(await notifications.getByText('New', { exact: true }).count()).toBe(0);
  } finally {
    await Promise.all(contexts.map((c) => c.close()));
  }
});

test("the practice manager opens a clinician's availability from the staff page", async () => {
  const context = await watch.context(browser!, service!.baseUrl);
  try {
    const page = await context.newPage();
    await signInStaff(page, ADMIN, '/admin');
    await expectHeading(page, 'Staff');
    await page.getByRole('link', { name: `${HUGHES.displayName}: weekly hours and leave`, exact: true }).click();
    await expectHeading(page, `Availability: ${HUGHES.displayName}`);
    expect(new URL(page.url()).pathname).toMatch(/^\/admin\/clinicians\/[0-9a-f-]{36}\/availability$/);
    await page.getByRole('group', { name: 'Monday', exact: true }).waitFor();
    await page.getByRole('heading', { name: 'Leave and blocked time', exact: true }).waitFor();
    await screenshot(page, 'admin-clinician-availability');
  } finally {
    await context.close();
  }
});
