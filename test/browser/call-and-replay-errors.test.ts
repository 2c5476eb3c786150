/**
 * What the call and replay pages say when something does not work (issue 14): a request to
 * switch to video that the other side declines; a browser without WebRTC or media devices; a
 * replay that is missing or someone else's; a replay the browser cannot play. This file runs its
 * own service and database: Chloe and Dr Patel hold the call, Amara and Ben (who have demo
 * replays) open replays.
 */
import { randomUUID } from 'node:crypto';
import type { Browser, BrowserContext, Page } from 'playwright-core';
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
  sleep,
  startService,
  stopAndCheck,
  type RunningService,
} from './support';

let service: RunningService | undefined;
let browser: Browser | undefined;
const watch = new PageWatch();
const contexts: BrowserContext[] = [];
let gp: Page;
let chloe: Page;
let amara: Page;
let ben: Page;
/** The consultation between Chloe and Dr Patel, once it is live. */
let consultationId = '';

const CHLOE = demoPerson('chloe@demo.confidant.test');
const PATEL = demoPerson('dr.patel@demo.confidant.test');
const CHLOE_NAME = `${CHLOE.givenName} ${CHLOE.familyName}`;

beforeAll(async () => {
  [service, browser] = await Promise.all([
    // A consultation opens up to a day before it starts, so the earliest slot can be joined at once.
    startService({ env: { CONSULTATION_JOIN_EARLY_MINUTES: '1440' } }),
    launchBrowser({ extraArgs: ['--autoplay-policy=no-user-gesture-required'] }),
  ]);
  contexts.push(...(await Promise.all([0, 1, 2, 3].map(() => watch.context(browser!, service!.baseUrl)))));
  [gp, chloe, amara, ben] = (await Promise.all(contexts.map((c) => c.newPage()))) as [Page, Page, Page, Page];
  await Promise.all([
    signInStaff(gp, PATEL.email, '/clinician'),
    signInPatient(chloe, CHLOE.email),
    signInPatient(amara, 'amara@demo.confidant.test'),
    signInPatient(ben, 'ben@demo.confidant.test'),
  ]);
  // Dr Patel works around the clock, so his earliest free slot starts within minutes.
  const gpId = (await sessionIn(gp)).account!.id;
  const hours = await fetchIn(gp, 'PUT', `/api/clinicians/${gpId}/availability`, {
    rules: [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, start: '00:00', end: '24:00' })),
  });
  expect(hours.status, hours.text).toBe(200);
});

afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail') {
    for (const [name, page] of [
      ['gp', gp],
      ['chloe', chloe],
      ['amara', amara],
      ['ben', ben],
    ] as const) {
      if (!page || page.isClosed()) continue;
      const text = await page.locator('main').innerText({ timeout: 2_000 }).catch(() => '(no main)');
      console.log(`${name} page ${page.url()}:\n${text}\n`);
    }
  }
  watch.assertClean();
});

afterAll(async () => {
  await Promise.all(contexts.map((c) => c.close()));
  await browser?.close();
  await stopAndCheck(service);
});

// ---------------------------------------------------------------------------------------------

const controls = (page: Page) => page.getByRole('group', { name: 'Call controls', exact: true });
const button = (page: Page, name: string) => controls(page).getByRole('button', { name, exact: true });
const status = (page: Page, text: string) => page.getByRole('status').filter({ hasText: text });
const modeNow = (page: Page) => page.locator('.call__mode');

/** The page is no wider than the screen: nothing to scroll sideways at 390 px. */
async function expectNoSidewaysScroll(page: Page) {
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(await page.evaluate(() => window.innerWidth));
}

/** A context signed in as the same session as `like`, in a browser that has no WebRTC and no media devices. */
async function withoutWebRtc(like: BrowserContext): Promise<Page> {
  const context = await watch.context(browser!, service!.baseUrl);
  contexts.push(context);
  await context.addInitScript(() => {
    const w = window as unknown as Record<string, unknown>;
    delete w.RTCPeerConnection;
    delete w.webkitRTCPeerConnection;
    delete (Navigator.prototype as unknown as Record<string, unknown>).mediaDevices;
  });
  await context.addCookies(await like.cookies());
  return context.newPage();
}

/** Chloe books Dr Patel's earliest slot (audio only), joins, and he starts it. */
async function bookJoinAndStart() {
  await chloe.goto('/patient/book');
  await expectHeading(chloe, 'Book a consultation');
  await chloe.getByLabel('GP', { exact: true }).selectOption({ label: PATEL.displayName });
  const radios = chloe.getByRole('group', { name: 'Time', exact: true }).getByRole('radio');
  await radios.first().waitFor();
  let startsAt = '';
  for (let i = 0; ; i++) {
    startsAt = (await radios.nth(i).getAttribute('value'))!.split('|')[1]!;
    if (new Date(startsAt).getTime() > Date.now() + 20_000) {
      await radios.nth(i).check();
      break;
    }
  }
  await chloe.getByRole('group', { name: 'Consultation type', exact: true }).getByRole('radio', { name: 'Audio only', exact: true }).check();
  await chloe.getByLabel('Reason for the consultation', { exact: true }).fill('A rash on my arm');
  await chloe.getByRole('button', { name: 'Book consultation', exact: true }).click();
  await expectPath(chloe, '/patient/appointments');
  await chloe
    .getByRole('list', { name: 'Upcoming', exact: true })
    .locator(':scope > li')
    .filter({ has: chloe.locator(`h3 time[datetime="${startsAt}"]`) })
    .getByRole('button', { name: 'Join consultation', exact: true })
    .click({ timeout: 45_000 });
  await chloe.waitForURL(/\/consultations\/[0-9a-f-]{36}$/);
  await expectHeading(chloe, `Consultation with ${PATEL.displayName}`);
  consultationId = new URL(chloe.url()).pathname.split('/').pop()!;

  const row = gp.getByRole('table', { name: 'Waiting room' }).getByRole('row').filter({ hasText: CHLOE_NAME });
  await row.getByRole('button', { name: 'Start consultation', exact: true }).click();
  await expectPath(gp, `/consultations/${consultationId}`);
  await gp.locator('.call__status').getByText(`Connected with ${CHLOE_NAME}.`, { exact: true }).waitFor({ timeout: 30_000 });
  await chloe.locator('.call__status').getByText(`Connected with ${PATEL.displayName}.`, { exact: true }).waitFor({ timeout: 30_000 });
}

test('the patient declines video: the GP is told, and the call stays audio-only; and the other way round', { timeout: 120_000 }, async () => {
  await bookJoinAndStart();
  const declinedByChloe = `${CHLOE_NAME} declined video. The call stays audio-only.`;
  const declinedByPatel = `${PATEL.displayName} declined video. The call stays audio-only.`;

  await button(gp, 'Switch to video').click();
  await status(gp, `Waiting for ${CHLOE_NAME} to agree to switch to video…`).waitFor();
  const ask = chloe.getByRole('dialog', { name: `${PATEL.displayName} asks to switch to video` });
  await ask.getByRole('button', { name: 'Not now', exact: true }).click();
  await ask.waitFor({ state: 'hidden' });

  // The GP's page says so, in a status that is announced, where it said it was waiting.
  await status(gp, declinedByChloe).waitFor();
  await status(gp, `Waiting for ${CHLOE_NAME} to agree`).waitFor({ state: 'detached' });
  expect(await modeNow(gp).innerText()).toBe('Now: audio call');
  expect(await button(gp, 'Switch to video').isEnabled()).toBe(true);
  // Chloe, who said no, is not told that she did.
  expect(await chloe.getByText('declined video').count()).toBe(0);
  await screenshot(gp, 'call-errors-gp-video-declined', { fullPage: false });

  // Asking again clears it; withdrawing that request is not "declined".
  await button(gp, 'Switch to video').click();
  await status(gp, `Waiting for ${CHLOE_NAME} to agree to switch to video…`).waitFor();
  expect(await gp.getByText(declinedByChloe).count()).toBe(0);
  await ask.waitFor();
  await button(gp, 'Withdraw video request').click();
  await ask.waitFor({ state: 'hidden' });
  await button(gp, 'Switch to video').waitFor();
  await sleep(1_500);
  expect(await gp.getByText('declined video').count()).toBe(0);

  // Chloe asks; Dr Patel declines: her page says so.
  await button(chloe, 'Switch to video').click();
  const gpAsk = gp.getByRole('dialog', { name: `${CHLOE_NAME} asks to switch to video` });
  await gpAsk.getByRole('button', { name: 'Not now', exact: true }).click();
  await gpAsk.waitFor({ state: 'hidden' });
  await status(chloe, declinedByPatel).waitFor();
  expect(await modeNow(chloe).innerText()).toBe('Now: audio call');
  expect(await gp.getByText('declined video').count()).toBe(0);
});

test('a patient whose browser has no WebRTC is told what to do, not "Connecting…" for ever', async () => {
  expect(consultationId, 'the call is up').not.toBe('');
  const page = await withoutWebRtc(contexts[1]!);
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`/consultations/${consultationId}`);
  await expectHeading(page, `Consultation with ${PATEL.displayName}`);
  expect(await page.evaluate(() => typeof (window as unknown as Record<string, unknown>).RTCPeerConnection)).toBe('undefined');

  const alert = page.getByRole('alert').filter({ hasText: 'This browser cannot make calls, so you cannot join the consultation here.' });
  await alert.waitFor();
  const words = await alert.innerText();
  expect(words).toContain('Open this page in an up-to-date Chrome, Edge, Firefox or Safari.');
  expect(words).toContain(`ask ${PATEL.displayName} to phone you instead`);
  // Nothing says it is connecting, now or a moment later; no call controls to press in vain.
  await sleep(2_000);
  expect(await page.getByText(/Connecting/).count()).toBe(0);
  expect(await controls(page).count()).toBe(0);
  await expectNoSidewaysScroll(page);
  await screenshot(page, 'call-errors-patient-no-webrtc');
  // Her other tab, in a browser that can, is still in the call.
  await chloe.locator('.call__status').getByText(`Connected with ${PATEL.displayName}.`, { exact: true }).waitFor();
  await page.close();
});

test('a GP whose browser has no WebRTC is told to phone the patient, and can end the consultation', async () => {
  expect(consultationId, 'the call is up').not.toBe('');
  const page = await withoutWebRtc(contexts[0]!);
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`/consultations/${consultationId}`);
  await expectHeading(page, `Consultation with ${CHLOE_NAME}`);
  const alert = page.getByRole('alert').filter({ hasText: 'This browser cannot make calls, so you cannot hold the call here.' });
  await alert.waitFor();
  expect(await alert.innerText()).toContain(`Or phone ${CHLOE_NAME} instead`);
  await sleep(1_000);
  expect(await page.getByText(/Connecting/).count()).toBe(0);
  // His notes are still there to write.
  await page.getByLabel('Notes', { exact: true }).waitFor();
  await expectNoSidewaysScroll(page);
  await screenshot(page, 'call-errors-gp-no-webrtc');

  await page.getByRole('button', { name: 'End consultation', exact: true }).click();
  await page.getByRole('dialog', { name: 'End the consultation?' }).getByRole('button', { name: 'Yes, end it', exact: true }).click();
  await page.getByRole('status').filter({ hasText: 'The consultation has ended' }).waitFor();
  await chloe.getByRole('status').filter({ hasText: 'The consultation has ended' }).waitFor();
  await page.close();
});

test("a replay that is missing, or someone else's, is a plain not-found page with a way back", async () => {
  const amaraReplays = JSON.parse((await fetchIn(amara, 'GET', '/api/replays')).text) as { replays: { id: string }[] };
  expect(amaraReplays.replays.length, 'the demo clinic gives Amara a replay').toBeGreaterThan(0);
  const amaras = amaraReplays.replays[0]!.id;
  await ben.setViewportSize({ width: 390, height: 844 });

  for (const [what, id] of [
    ['a replay that does not exist', randomUUID()],
    ["Amara's replay", amaras],
    ['a malformed link', 'not-a-replay'],
  ] as const) {
    await ben.goto(`/replays/${id}`);
    await expectHeading(ben, 'We could not find that replay');
    await ben.getByText('It may have been removed, or the link may be wrong.').waitFor();
    expect(await ben.getByRole('button', { name: 'Try again' }).count(), what).toBe(0);
    expect(await ben.getByRole('alert').count(), what).toBe(0);
    expect(await ben.title(), what).toBe('We could not find that replay – Confidant');
    // Nothing of Amara's appears.
    expect(await ben.locator('video').count(), what).toBe(0);
    await expectNoSidewaysScroll(ben);
  }
  await screenshot(ben, 'replay-not-found');
  await ben.getByRole('link', { name: 'All consultation replays', exact: true }).click();
  await expectPath(ben, '/patient/replays');
  await expectHeading(ben, 'Consultation replays');

  // An address that is not a page at all has the general not-found page.
  await ben.goto(`/patient/replays/${randomUUID()}`);
  await expectHeading(ben, 'Page not found');
  expect(await ben.getByRole('button', { name: 'Try again' }).count()).toBe(0);
  await ben.getByRole('link', { name: 'Go to your home page', exact: true }).waitFor();
});

test('a replay that cannot be loaded for now keeps its Try again', async () => {
  const { replays } = JSON.parse((await fetchIn(amara, 'GET', '/api/replays')).text) as { replays: { id: string }[] };
  const id = replays[0]!.id;
  const metadata = `**/api/recordings/${id}`;
  await amara.route(metadata, (route) =>
    route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ error: { code: 'unavailable', message: 'Replays are unavailable for a moment. Try again shortly.' } }) }),
  );
  await amara.goto(`/replays/${id}`);
  await expectHeading(amara, 'Consultation replay');
  await amara.getByRole('alert').filter({ hasText: 'Replays are unavailable for a moment.' }).waitFor();
  await amara.unroute(metadata);
  await amara.getByRole('button', { name: 'Try again', exact: true }).click();
  await amara.getByRole('heading', { level: 1, name: /^Consultation of / }).waitFor();
});

test('a replay the browser cannot play says so, and what to do; trying again plays it', async () => {
  const { replays } = JSON.parse((await fetchIn(amara, 'GET', '/api/replays')).text) as { replays: { id: string }[] };
  const id = replays[0]!.id;
  // A body that is no recording, as WebM: the media element really fails to decode it.
  const media = `**/api/recordings/${id}/media`;
  await amara.route(media, (route) => route.fulfill({ status: 200, contentType: 'video/webm', body: 'This is not a WebM recording.'.repeat(40) }));
  await amara.setViewportSize({ width: 390, height: 844 });
  await amara.goto(`/replays/${id}`);
  await amara.getByRole('heading', { level: 1, name: /^Consultation of / }).waitFor();

  const alert = amara.getByRole('alert').filter({ hasText: 'The recording cannot be played.' });
  await alert.waitFor();
  const words = await alert.innerText();
  console.log(`replay failure as shown:\n${words}`);
  expect(words).toContain('Open this page in an up-to-date Chrome, Edge or Firefox.');
  expect(words).toContain('contact the practice');
  expect(words).toMatch(/Details for the practice: error [1-4]/);
  const code = await amara.locator('video.replay__video').evaluate((v: HTMLVideoElement) => v.error?.code ?? 0);
  expect(code, 'the media element failed').toBeGreaterThan(0);
  // No broken player left on screen in its place.
  expect(await amara.locator('video.replay__video').isVisible()).toBe(false);
  await expectNoSidewaysScroll(amara);
  await screenshot(amara, 'replay-cannot-play');

  await amara.unroute(media);
  await alert.getByRole('button', { name: 'Try again', exact: true }).click();
  await alert.waitFor({ state: 'detached' });
  const video = amara.locator('video.replay__video');
  await expect.poll(() => video.isVisible()).toBe(true);
  await video.evaluate(
    (v: HTMLVideoElement) =>
      new Promise<void>((resolve, reject) => {
        if (v.readyState >= 1) return resolve();
        v.addEventListener('loadedmetadata', () => resolve(), { once: true });
        v.addEventListener('error', () => reject(new Error(`media error ${v.error?.code}`)), { once: true });
      }),
  );
});
