/**
 * The breach guard as people see it (issue 16), with no mocks: a real integrity failure (a byte
 * flipped in one of the demo patient's sealed replays on disk) switches replay playback off by
 * itself; the patient's page says playing is switched off; the DPO's page is told at once (pushed,
 * not polled) and shows the alert, the feature off and the audit event; an admin may not switch it
 * back on; the DPO does, with a reason, and the patient plays again. Then the Features page, for
 * the practice manager, at a desktop width and on a 390 px phone.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { featureOffMessage } from '../../web/src/features';
import {
  DESKTOP,
  PHONE,
  PageWatch,
  demoPerson,
  expectAccessible,
  expectHeading,
  expectPath,
  fetchIn,
  launchBrowser,
  screenshot,
  sidewaysOverflow,
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
const DPO = 'dpo@demo.confidant.test';
const ADMIN = 'admin@demo.confidant.test';

const PLAYBACK_OFF = 'Playing replays is switched off for the moment. Your recordings are safe; please try again later.';

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

/** The media element has the recording's metadata: it is playing it, not failing. */
function videoLoaded(page: Page): Promise<unknown> {
  return page.waitForFunction(() => (document.querySelector<HTMLVideoElement>('video.replay__video')?.readyState ?? 0) >= 1, undefined, {
    timeout: 20_000,
  });
}

test('every feature the server names has its own words in the web app', async () => {
  const res = await fetch(`${service!.baseUrl}/api/features/status`);
  expect(res.status).toBe(200);
  const { features } = (await res.json()) as { features: { name: string; enabled: boolean }[] };
  expect(features.length).toBeGreaterThan(10);
  const general = featureOffMessage('no_such_feature');
  expect(features.filter((f) => featureOffMessage(f.name) === general).map((f) => f.name)).toEqual([]);
  expect(featureOffMessage('replay_playback')).toBe(PLAYBACK_OFF);
});

test(
  'a damaged recording switches replay playback off; the patient is told, the DPO sees the alert pushed and switches it back on',
  { timeout: 240_000 },
  async () => {
    // The DPO is watching the home page before anything happens; it is never reloaded below.
    const { context: dpoContext, page: dpo } = await newPage();
    await signInStaff(dpo, DPO, '/dpo');
    await expectHeading(dpo, 'Audit trail');
    const alerts = dpo.getByRole('region', { name: 'Alerts', exact: true });
    await alerts.getByText('Live: new alerts appear here as soon as they are raised.').waitFor();
    await alerts.getByText('No alerts.', { exact: false }).waitFor();
    const offFeatures = dpo.getByRole('region', { name: 'Features switched off' });
    await offFeatures.getByText('All features are on.').waitFor();
    expect(await dpo.locator('.alert-banner').count()).toBe(0);

    // Amara opens her replays; one of them is damaged on disk.
    const { context: amaraContext, page: amara } = await newPage();
    await signInPatient(amara, AMARA.email);
    await amara.goto('/patient/replays');
    await expectHeading(amara, 'Consultation replays');
    const play = amara.getByRole('link', { name: /^Play / }).first();
    const recordingId = (await play.getAttribute('href'))!.split('/').pop()!;
    const file = path.join(service!.dataDir, 'blobs', 'recordings', recordingId);
    const original = await readFile(file);
    const damaged = Buffer.from(original);
    // Inside the first sealed segment's ciphertext (after its 12-byte IV): its tag no longer matches.
    damaged[100] = damaged[100]! ^ 0x01;
    await writeFile(file, damaged);

    // From now on, how often the DPO's page asks for the list, and opens the stream.
    const asked = { list: 0, stream: 0 };
    dpo.on('request', (req) => {
      const { pathname } = new URL(req.url());
      if (pathname === '/api/guard/alerts') asked.list++;
      if (pathname === '/api/guard/alerts/stream') asked.stream++;
    });
    await play.click();
    await expectPath(amara, `/replays/${recordingId}`);
    // The server answers recording_damaged; the detector switches playback off everywhere; the page says so.
    await amara.getByText(PLAYBACK_OFF).waitFor({ timeout: 20_000 });
    expect(await amara.locator('video').count(), 'no player while playback is off').toBe(0);
    await screenshot(amara, 'breach-guard-patient-playback-off', { fullPage: false });

    // The list greys Play too, and says why.
    await amara.getByRole('link', { name: 'All consultation replays' }).click();
    await expectHeading(amara, 'Consultation replays');
    await amara.getByText(PLAYBACK_OFF).waitFor();
    const greyedPlay = amara.getByRole('button', { name: /^Play / }).first();
    expect(await greyedPlay.isDisabled()).toBe(true);
    expect(await amara.getByRole('link', { name: /^Play / }).count()).toBe(0);

    // The DPO's page is told: the banner, the alert, the feature off automatically.
    const banner = dpo.locator('.alert-banner');
    await banner.waitFor({ timeout: 10_000 });
    expect(await banner.getAttribute('role')).toBe('alert');
    expect(await banner.innerText()).toMatch(/^1 critical alert: replay playback was switched off automatically\. Review/);
    const alert = alerts.getByRole('listitem').filter({ has: dpo.getByRole('heading', { name: /Integrity rule/ }) });
    await alert.waitFor();
    const alertText = await alert.innerText();
    expect(alertText).toContain('Critical');
    expect(alertText).toContain('Replay playback');
    expect(alertText).toContain('switched off automatically');
    await offFeatures.getByText('Switched off automatically', { exact: true }).waitFor();
    // Pushed: the page asks for the list only when its stream (re)opens, never to poll.
    expect(asked.list, 'alerts arrive through the stream').toBeLessThanOrEqual(asked.stream);

    await expectAccessible(dpo, 'DPO home with a critical alert');
    await alert.scrollIntoViewIfNeeded();
    await screenshot(dpo, 'breach-guard-phone-dpo-alert', { fullPage: false });
    await dpo.setViewportSize(DESKTOP);
    await screenshot(dpo, 'breach-guard-dpo-alert', { fullPage: false });

    // The alert's audit event, looked up in the audit trail on the same page.
    await alert.getByRole('button', { name: /^Show event \d+ in the audit trail$/ }).first().click();
    const events = dpo.getByRole('table', { name: /^Audit events/ });
    await expect.poll(async () => (await events.locator('tbody tr').first().innerText().catch(() => '')), { timeout: 10_000 }).toContain(
      'recording.integrity_failed',
    );
    expect(await dpo.getByLabel('Up to event', { exact: true }).inputValue()).toMatch(/^\d+$/);

    // The banner follows the DPO to every page.
    await dpo.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Features', exact: true }).click();
    await expectHeading(dpo, 'Features');
    await banner.waitFor();

    // The practice manager may not switch it back on after an automatic kill.
    const { context: adminContext, page: admin } = await newPage();
    await signInStaff(admin, ADMIN, '/admin');
    await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Features', exact: true }).click();
    await expectHeading(admin, 'Features');
    const adminRow = admin.locator('tr[data-feature="replay_playback"]');
    await adminRow.getByText('Only the data-protection officer can switch this back on', { exact: false }).waitFor();
    expect(await adminRow.getByRole('button').count()).toBe(0);
    await adminRow.scrollIntoViewIfNeeded();
    await screenshot(admin, 'breach-guard-admin-features-dpo-only', { fullPage: false });
    const refused = await fetchIn(admin, 'PUT', '/api/features/replay_playback', { enabled: true, reason: 'The practice manager tries' });
    expect(refused.status, refused.text).toBe(403);
    expect(JSON.parse(refused.text).error.code).toBe('dpo_required');
    expect(await admin.locator('.alert-banner').count(), 'the banner is for the DPO').toBe(0);
    await adminContext.close();

    // The cause is dealt with (the recording restored), then the DPO switches playback back on from home.
    await writeFile(file, original);
    await dpo.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit trail', exact: true }).click();
    await expectHeading(dpo, 'Audit trail');
    await offFeatures.getByRole('button', { name: 'Switch back on: Replay playback' }).click();
    const dialog = dpo.getByRole('dialog', { name: 'Switch replay playback back on?' });
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Switch on', exact: true }).click();
    await dialog.getByText('Say why you are switching replay playback back on (at least 3 characters).').first().waitFor();
    await dialog.getByLabel('Reason', { exact: true }).fill('Damaged copy replaced from the backup; the chain verifies.');
    await dialog.getByRole('button', { name: 'Switch on', exact: true }).click();
    await dialog.waitFor({ state: 'hidden' });
    await offFeatures.getByText('Replay playback is back on.').waitFor();
    await offFeatures.getByText('All features are on.').waitFor();

    // Acknowledged: the banner goes.
    await alert.getByRole('button', { name: 'Acknowledge', exact: true }).click();
    await alert.getByText('Acknowledged', { exact: false }).waitFor();
    await banner.waitFor({ state: 'detached' });

    // Amara plays again.
    await amara.getByRole('button', { name: 'Check again' }).click();
    await amara.getByRole('link', { name: /^Play / }).first().click();
    await expectPath(amara, `/replays/${recordingId}`);
    await videoLoaded(amara);
    expect(await amara.locator('.replay__failure').count()).toBe(0);
    expect(await amara.getByText(PLAYBACK_OFF).count()).toBe(0);

    await amaraContext.close();
    await dpoContext.close();
  },
);

test('the Features page: the practice manager switches booking off and on with a reason; a phone gets cards', { timeout: 120_000 }, async () => {
  const { context: adminContext, page: admin } = await newPage();
  await signInStaff(admin, ADMIN, '/admin');
  await admin.getByRole('link', { name: 'Features and their switches' }).click();
  await expectHeading(admin, 'Features');
  const table = admin.getByRole('table', { name: 'Features and their switches' });
  await table.waitFor();
  expect(await table.locator('tbody tr').count()).toBeGreaterThan(10);
  await expectAccessible(admin, 'features');
  // The page was left at the phone width: one card per feature, nothing sideways.
  expect(admin.viewportSize()).toEqual(PHONE);
  expect(await sidewaysOverflow(admin)).toEqual([]);
  expect(await table.locator('thead').evaluate((el) => el.getBoundingClientRect().height)).toBeLessThanOrEqual(1);
  await screenshot(admin, 'breach-guard-phone-features');

  const booking = admin.locator('tr[data-feature="booking"]');
  await booking.getByRole('button', { name: 'Switch off: Booking' }).click();
  const dialog = admin.getByRole('dialog', { name: 'Switch booking off?' });
  await dialog.getByLabel('Reason', { exact: true }).fill('Testing the switch before the morning clinic');
  await expectAccessible(admin, 'features, switching booking off');
  await dialog.getByRole('button', { name: 'Switch off', exact: true }).click();
  await dialog.waitFor({ state: 'hidden' });
  await admin.getByText('Booking is now off.').waitFor();
  const bookingText = await booking.innerText();
  expect(bookingText).toContain('Off');
  expect(bookingText).toContain('Testing the switch before the morning clinic');
  expect(bookingText).toContain('Administrator (you)');

  // A patient is told, on the pages that book.
  const { context: amaraContext, page: amara } = await newPage();
  await signInPatient(amara, AMARA.email);
  await amara.getByText(featureOffMessage('booking')).waitFor();
  expect(await amara.getByRole('main').getByRole('link', { name: 'Book a consultation' }).count()).toBe(0);
  await amara.goto('/patient/book');
  await expectHeading(amara, 'Book a consultation');
  await amara.getByText(featureOffMessage('booking')).waitFor();
  expect(await amara.getByRole('button', { name: 'Book consultation' }).count()).toBe(0);
  await expectAccessible(amara, 'booking switched off');

  // A request that is refused anyway says the same, not a generic error.
  const refused = await fetchIn(amara, 'GET', '/api/clinicians');
  expect(refused.status).toBe(503);
  expect(JSON.parse(refused.text).error).toMatchObject({ code: 'feature_disabled', details: { feature: 'booking' } });

  await admin.setViewportSize(DESKTOP);
  await booking.getByRole('button', { name: 'Switch on: Booking' }).click();
  const on = admin.getByRole('dialog', { name: 'Switch booking back on?' });
  await on.getByLabel('Reason', { exact: true }).fill('Test finished');
  await on.getByRole('button', { name: 'Switch on', exact: true }).click();
  await on.waitFor({ state: 'hidden' });
  await admin.getByText('Booking is now on.').waitFor();

  await amara.getByRole('button', { name: 'Check again' }).click();
  await amara.getByRole('button', { name: 'Book consultation' }).waitFor();
  await amaraContext.close();
  await adminContext.close();
});
