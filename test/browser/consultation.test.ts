import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import type { DemoPerson } from '../../src/demo/demo-clinic';
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
// Signed in once for the whole file: a second TOTP sign-in would wait for the next 30 s step.
let patel: Page;
let hughes: Page;
let chloe: Page;
let ben: Page;

const CHLOE = demoPerson('chloe@demo.confidant.test');
const BEN = demoPerson('ben@demo.confidant.test');
const PATEL = demoPerson('dr.patel@demo.confidant.test');
const HUGHES = demoPerson('dr.hughes@demo.confidant.test');
const CHLOE_NAME = `${CHLOE.givenName} ${CHLOE.familyName}`;
const BEN_NAME = `${BEN.givenName} ${BEN.familyName}`;

beforeAll(async () => {
  [service, browser] = await Promise.all([
    // A consultation opens up to a day before it starts, so that whatever the time of day the
    // earliest slot can be joined at once (the web app offers "Join" by the same setting).
    // Ben asks for Chloe's consultation and recording by id on purpose, in more than one test: that
    // is what the breach guard's probing rule counts, and at its default (10 in 5 minutes) it would
    // throttle him between tests, by design (test/guard/detection.test.ts tests that).
    startService({ env: { CONSULTATION_JOIN_EARLY_MINUTES: '1440', GUARD_PROBE_THRESHOLD: '100' } }),
    launchBrowser({ extraArgs: ['--autoplay-policy=no-user-gesture-required'] }),
  ]);
  contexts.push(...(await Promise.all([0, 1, 2, 3].map(() => watch.context(browser!, service!.baseUrl)))));
  // Counts the times Chloe's pages ask for a camera: none may be asked for before she agrees to video.
  await contexts[2]!.addInitScript(() => {
    const w = window as unknown as { __cameraRequests: number };
    w.__cameraRequests = 0;
    const devices = navigator.mediaDevices;
    if (!devices) return; // about:blank
    const original = devices.getUserMedia.bind(devices);
    devices.getUserMedia = (constraints?: MediaStreamConstraints) => {
      if (constraints?.video) w.__cameraRequests++;
      return original(constraints);
    };
  });
  [patel, hughes, chloe, ben] = (await Promise.all(contexts.map((c) => c.newPage()))) as [Page, Page, Page, Page];
  await Promise.all([
    signInStaff(patel, PATEL.email, '/clinician'),
    signInStaff(hughes, HUGHES.email, '/clinician'),
    signInPatient(chloe, CHLOE.email),
    signInPatient(ben, BEN.email),
  ]);
  // Both GPs work around the clock, so each one's earliest free slot starts within minutes.
  for (const gp of [patel, hughes]) {
    const gpId = (await sessionIn(gp)).account!.id;
    const hours = await fetchIn(gp, 'PUT', `/api/clinicians/${gpId}/availability`, {
      rules: [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, start: '00:00', end: '24:00' })),
    });
    expect(hours.status, hours.text).toBe(200);
  }
});

afterEach(() => watch.assertClean());

afterAll(async () => {
  await Promise.all(contexts.map((c) => c.close()));
  await browser?.close();
  await stopAndCheck(service);
});

interface Inbound {
  packets: number;
  frames: number;
}

/** What the page's current peer connection has received of one kind, from getStats. */
function inbound(page: Page, kind: 'audio' | 'video'): Promise<Inbound> {
  return page.evaluate(async (kind) => {
    const pc = (window as unknown as { __confidantPeer?: RTCPeerConnection | null }).__confidantPeer;
    const out = { packets: 0, frames: 0 };
    if (!pc) return out;
    const stats = await pc.getStats();
    stats.forEach((s: { type: string; kind?: string; packetsReceived?: number; framesDecoded?: number }) => {
      if (s.type === 'inbound-rtp' && s.kind === kind) {
        out.packets += s.packetsReceived ?? 0;
        out.frames += s.framesDecoded ?? 0;
      }
    });
    return out;
  }, kind);
}

/** Whether the page's peer connection has a camera track on a sender. */
function sendingVideo(page: Page): Promise<boolean> {
  return page.evaluate(() => {
    const pc = (window as unknown as { __confidantPeer?: RTCPeerConnection | null }).__confidantPeer;
    return !!pc && pc.getSenders().some((s) => s.track?.kind === 'video');
  });
}

/** Media of `kind` flows into `page` now: some received, and more a moment later. */
async function expectFlowing(page: Page, kind: 'audio' | 'video', who: string) {
  const measure = (i: Inbound) => (kind === 'audio' ? i.packets : i.frames);
  await expect.poll(async () => measure(await inbound(page, kind)), { timeout: 15_000, message: `${who}: ${kind} received` }).toBeGreaterThan(0);
  const first = measure(await inbound(page, kind));
  await expect
    .poll(async () => measure(await inbound(page, kind)), { timeout: 10_000, message: `${who}: ${kind} still arriving` })
    .toBeGreaterThan(first);
}

/** Opens a WebSocket from inside the page: 'open' if the server accepted it, else how it closed. */
function tryWebSocket(page: Page, path: string): Promise<string> {
  return page.evaluate(
    (path) =>
      new Promise<string>((resolve) => {
        const ws = new WebSocket(location.origin.replace('http', 'ws') + path);
        const timer = setTimeout(() => resolve('timeout'), 10_000);
        ws.onopen = () => {
          clearTimeout(timer);
          ws.close();
          resolve('open');
        };
        ws.onclose = (e) => {
          clearTimeout(timer);
          resolve(`closed ${e.code}`);
        };
      }),
    path,
  );
}

/** The dialog a party is asked a question in, answered with `answer`. */
async function answerDialog(page: Page, title: string | RegExp, answer: string, shot?: string) {
  const dialog = page.getByRole('dialog', { name: title });
  await dialog.waitFor();
  if (shot) await screenshot(page, shot, { fullPage: false });
  await dialog.getByRole('button', { name: answer, exact: true }).click();
  await dialog.waitFor({ state: 'hidden' });
}

/** What each page showed when something went wrong, to read beside the error. */
async function explainFailure() {
  for (const [i, c] of contexts.entries()) {
    for (const page of c.pages()) {
      const text = await page.locator('main').innerText({ timeout: 2_000 }).catch(() => '(no main)');
      console.log(`page ${i} ${page.url()}:\n${text}\n`);
      await screenshot(page, `consultation-failure-${i}`).catch(() => undefined);
    }
  }
}

/**
 * A patient books the GP's earliest free slot (audio only), joins from her appointment and waits. The
 * web app offers "Join consultation" as soon as the clinic's join window opens (a day early here).
 */
async function bookAndJoin(patient: Page, gp: DemoPerson, reason: string): Promise<{ consultationId: string; startsAt: string }> {
  await patient.goto('/patient/book');
  await expectHeading(patient, 'Book a consultation');
  await patient.getByLabel('GP', { exact: true }).selectOption({ label: gp.displayName });
  const radios = patient.getByRole('group', { name: 'Time', exact: true }).getByRole('radio');
  await radios.first().waitFor();
  let startsAt = '';
  for (let i = 0; ; i++) {
    startsAt = (await radios.nth(i).getAttribute('value'))!.split('|')[1]!;
    if (new Date(startsAt).getTime() > Date.now() + 20_000) {
      await radios.nth(i).check();
      break;
    }
  }
  await patient.getByRole('group', { name: 'Consultation type', exact: true }).getByRole('radio', { name: 'Audio only', exact: true }).check();
  await patient.getByLabel('Reason for the consultation', { exact: true }).fill(reason);
  await patient.getByRole('button', { name: 'Book consultation', exact: true }).click();
  await expectPath(patient, '/patient/appointments');
  const appointment = patient
    .getByRole('list', { name: 'Upcoming', exact: true })
    .locator(':scope > li')
    .filter({ has: patient.locator(`h3 time[datetime="${startsAt}"]`) });
  const join = appointment.getByRole('button', { name: 'Join consultation', exact: true });
  await join.waitFor({ timeout: 45_000 });
  await join.click();
  await patient.waitForURL(/\/consultations\/[0-9a-f-]{36}$/);
  await expectHeading(patient, `Consultation with ${gp.displayName}`);
  await patient.getByText(/^You are in the waiting room\./).waitFor();
  return { consultationId: new URL(patient.url()).pathname.split('/').pop()!, startsAt };
}

/** The recording indicator a party sees, e.g. "● Recording sound only". */
const indicator = (page: Page) => page.locator('.recording-indicator');

test('a patient and a GP hold an audio call, switch to video, record it with consent, and only the patient replays it', { timeout: 150_000 }, async () => {
  const t0 = Date.now();
  const mark = (what: string) => console.log(`consultation test: ${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  try {
    // Chloe books the earliest slot with Dr Patel, audio only, and joins from her appointment.
    const { consultationId, startsAt: chloeAt } = await bookAndJoin(chloe, PATEL, 'Sore throat and a fever for three days');
    mark('patient in the waiting room');

    // Dr Patel sees her in the waiting room and starts the consultation.
    const waitingRoom = patel.getByRole('table', { name: 'Waiting room' });
    const row = waitingRoom.getByRole('row').filter({ hasText: CHLOE_NAME });
    await row.getByText(/^Waiting/).waitFor({ timeout: 15_000 });
    await screenshot(patel, 'clinician-waiting-room');
    await row.getByRole('button', { name: 'Start consultation', exact: true }).click();
    await expectPath(patel, `/consultations/${consultationId}`);
    await expectHeading(patel, `Consultation with ${CHLOE_NAME}`);

    // An audio call, sound flowing both ways.
    await Promise.all([expectFlowing(chloe, 'audio', 'patient'), expectFlowing(patel, 'audio', 'clinician')]);
    await chloe.getByText(`Connected with ${PATEL.displayName}.`, { exact: true }).waitFor();
    await patel.getByText(`Connected with ${CHLOE_NAME}.`, { exact: true }).waitFor();
    // Nobody has muted: neither side is shown as muted.
    await expect.poll(() => chloe.locator('.call__remote .tag', { hasText: 'Muted' }).count()).toBe(0);
    await expect.poll(() => patel.locator('.call__remote .tag', { hasText: 'Muted' }).count()).toBe(0);
    mark('audio flowing both ways');

    // A reload on either side reconnects the call (a fresh offer on a fresh connection).
    await chloe.reload();
    await expectHeading(chloe, `Consultation with ${PATEL.displayName}`);
    await Promise.all([expectFlowing(chloe, 'audio', 'patient after reload'), expectFlowing(patel, 'audio', 'clinician')]);
    await patel.reload();
    await expectHeading(patel, `Consultation with ${CHLOE_NAME}`);
    await Promise.all([expectFlowing(chloe, 'audio', 'patient'), expectFlowing(patel, 'audio', 'clinician after reload')]);
    mark('call recovered after a reload on each side');

    // Ben, signed in at the same time, cannot reach the call in any way.
    expect(await tryWebSocket(ben, `/api/consultations/${consultationId}/signal`)).not.toBe('open');
    expect((await fetchIn(ben, 'GET', `/api/consultations/${consultationId}`)).status).toBe(404);
    expect((await fetchIn(ben, 'GET', `/api/consultations/${consultationId}/notes`)).status).toBe(404);
    expect((await fetchIn(ben, 'POST', `/api/consultations/${consultationId}/consents`, { media: 'audio', decision: 'granted' })).status).toBe(404);

    // Recording, with Chloe's consent.
    await patel.getByRole('button', { name: 'Ask to record', exact: true }).click();
    await answerDialog(chloe, `${PATEL.displayName} asks to record this consultation (sound only)`, 'Allow', 'patient-consent-dialog');
    await patel.getByRole('button', { name: 'Start recording', exact: true }).click();
    await chloe.getByRole('status').filter({ hasText: /^● Recording sound only$/ }).waitFor();
    await patel.getByRole('status').filter({ hasText: /^● Recording sound only$/ }).waitFor();
    const recordingId = (JSON.parse((await fetchIn(chloe, 'GET', `/api/consultations/${consultationId}`)).text) as { recording: { id: string } })
      .recording.id;
    for (const path of [`/api/recordings/${recordingId}`, `/api/recordings/${recordingId}/media`, `/api/recordings/${recordingId}/upload`]) {
      expect((await fetchIn(ben, 'GET', path)).status, path).toBe(404);
    }
    mark('recording sound');

    // Dr Patel asks to switch to video; Chloe agrees, then allows video to be recorded too.
    await patel.getByRole('button', { name: 'Switch to video', exact: true }).click();
    await patel.getByText(`Waiting for ${CHLOE_NAME} to agree to switch to video…`).waitFor();
    // Until she agrees, her camera is not even opened.
    const cameraRequests = () => chloe.evaluate(() => (window as unknown as { __cameraRequests: number }).__cameraRequests);
    expect(await cameraRequests()).toBe(0);
    expect(await sendingVideo(chloe)).toBe(false);
    await answerDialog(chloe, `${PATEL.displayName} asks to switch to video`, 'Agree', 'patient-video-request');
    await answerDialog(chloe, `${PATEL.displayName} asks to record video too`, 'Allow');
    await chloe.getByRole('status').filter({ hasText: /^● Recording video recorded$/ }).waitFor();
    await patel.getByRole('status').filter({ hasText: /^● Recording video recorded$/ }).waitFor();
    await Promise.all([expectFlowing(chloe, 'video', 'patient'), expectFlowing(patel, 'video', 'clinician')]);
    expect(await cameraRequests()).toBe(1);
    expect(await sendingVideo(chloe)).toBe(true);
    mark('video flowing both ways');
    await screenshot(patel, 'clinician-video-call', { fullPage: false });
    await screenshot(chloe, 'patient-video-call', { fullPage: false });

    await sleep(3_000);
    const notes = 'Viral pharyngitis. Fluids, paracetamol; call back if not better in a week.';
    await patel.getByLabel('Notes', { exact: true }).fill(notes);
    await patel.getByRole('button', { name: 'End consultation', exact: true }).click();
    await patel.getByRole('dialog', { name: 'End the consultation?' }).getByRole('button', { name: 'Yes, end it', exact: true }).click();
    await patel.getByText(/^The consultation has ended/).waitFor({ timeout: 30_000 });
    await chloe.getByText(/^The consultation has ended/).waitFor();
    mark('consultation ended');

    // Her GP's notes, at once on the ended call, and later from the appointment in her list.
    await chloe.getByRole('heading', { name: `Notes from ${PATEL.displayName}` }).waitFor();
    await chloe.getByText(notes).waitFor();
    await chloe.goto('/patient/appointments');
    await expectHeading(chloe, 'Your appointments');
    await chloe.getByRole('link', { name: new RegExp(`^Notes from ${PATEL.displayName} on `) }).first().click();
    await chloe.waitForURL(new RegExp(`/consultations/${consultationId}$`));
    await chloe.getByText(notes).waitFor();
    mark('notes found from the appointment');

    // Dr Patel reopens them from the completed row of her day list.
    await patel.goto('/clinician');
    await expectHeading(patel, "Today's consultations");
    const completedRow = patel.getByRole('row').filter({ has: patel.locator(`time[datetime="${chloeAt}"]`) });
    await completedRow.getByText('Completed', { exact: true }).waitFor();
    await completedRow.getByRole('link', { name: 'Notes', exact: true }).click();
    await patel.waitForURL(new RegExp(`/consultations/${consultationId}$`));
    await expect.poll(() => patel.getByLabel('Notes', { exact: true }).inputValue()).toBe(notes);
    mark('GP reopened the notes from the day list');

    // Chloe finds it under Consultation replays once it has been finalised.
    await chloe.getByRole('link', { name: 'Consultation replays', exact: true }).click();
    await expectHeading(chloe, 'Consultation replays');
    const replays = chloe.getByRole('table', { name: 'Your recorded consultations' });
    await expect
      .poll(
        async () => {
          if ((await replays.count()) === 0) {
            await chloe.getByRole('button', { name: 'Refresh the list', exact: true }).click();
            await sleep(500);
          }
          return replays.count();
        },
        { timeout: 30_000, interval: 500 },
      )
      .toBe(1);
    const rows = replays.locator('tbody tr');
    expect(await rows.count()).toBe(1);
    expect(await rows.first().getAttribute('data-consultation-id')).toBe(consultationId);
    const rowText = await rows.first().innerText();
    expect(rowText).toContain(PATEL.displayName);
    expect(rowText).toContain('Sound and video');
    const duration = /(\d+):(\d\d)/.exec(rowText);
    expect(duration, rowText).not.toBeNull();
    expect(Number(duration![1]) * 60 + Number(duration![2])).toBeGreaterThanOrEqual(2);
    mark('replay listed');

    // The player: a finite duration, a seek to the middle, and playback from there.
    await rows.first().getByRole('link', { name: /^Play / }).click();
    await chloe.waitForURL(new RegExp(`/replays/${recordingId}$`));
    await chloe.getByText(notes).waitFor();
    const video = chloe.locator('video.replay__video');
    await video.waitFor();
    const seconds = await video.evaluate(
      (v: HTMLVideoElement) =>
        new Promise<number>((resolve, reject) => {
          const done = () => resolve(v.duration);
          if (v.readyState >= 1) done();
          v.addEventListener('loadedmetadata', done, { once: true });
          v.addEventListener('error', () => reject(new Error(`media error ${v.error?.code}`)), { once: true });
        }),
    );
    expect(Number.isFinite(seconds)).toBe(true);
    expect(seconds).toBeGreaterThan(1);
    const seekedTo = await video.evaluate(
      (v: HTMLVideoElement) =>
        new Promise<number>((resolve) => {
          v.muted = true;
          v.addEventListener('seeked', () => resolve(v.currentTime), { once: true });
          v.currentTime = v.duration / 2;
        }),
    );
    expect(seekedTo).toBeGreaterThan(seconds / 2 - 1);
    await video.evaluate((v: HTMLVideoElement) => v.play());
    await expect.poll(() => video.evaluate((v: HTMLVideoElement) => v.currentTime), { timeout: 10_000 }).toBeGreaterThan(seekedTo + 0.3);
    await screenshot(chloe, 'patient-replay');
    mark('replay played from the middle');

    // Ben sees none of it among his replays (the demo clinic may have given him one of his own), and
    // still gets nothing from the API.
    await ben.goto('/patient/replays');
    await expectHeading(ben, 'Consultation replays');
    await ben.getByText(/^(You have no recorded consultations\.|Play)$/).first().waitFor();
    const benSees = await ben.locator('main').innerText();
    expect(benSees).not.toContain(CHLOE_NAME);
    expect(await ben.locator(`tr[data-consultation-id="${consultationId}"]`).count()).toBe(0);
    expect(await ben.locator(`a[href="/replays/${recordingId}"]`).count()).toBe(0);
    const benList = JSON.parse((await fetchIn(ben, 'GET', '/api/replays')).text) as { replays: { id: string; consultationId: string; patient: { displayName: string } }[] };
    expect(benList.replays.filter((r) => r.id === recordingId || r.consultationId === consultationId)).toEqual([]);
    for (const r of benList.replays) expect(r.patient.displayName).toBe(`${BEN.givenName} ${BEN.familyName}`);
    expect(await ben.locator('tbody tr').count()).toBe(benList.replays.length);
    for (const path of [
      `/api/consultations/${consultationId}`,
      `/api/consultations/${consultationId}/notes`,
      `/api/recordings/${recordingId}`,
      `/api/recordings/${recordingId}/media`,
    ]) {
      const answer = await fetchIn(ben, 'GET', path);
      expect(answer.status, path).toBe(404);
      expect(answer.text).not.toContain(notes);
    }
    expect(await tryWebSocket(ben, `/api/consultations/${consultationId}/signal`)).not.toBe('open');
    mark('done');
  } catch (error) {
    await explainFailure();
    throw error;
  }
});

test('the patient stops the recording, hangs up and rejoins; the GP opens the call from his day list', { timeout: 90_000 }, async () => {
  try {
    const { consultationId, startsAt } = await bookAndJoin(ben, HUGHES, 'Follow-up on the sore throat');

    // Dr Hughes opens it from his day list (the clinic's date of the slot), then starts it.
    const { timeZone } = JSON.parse((await fetchIn(hughes, 'GET', '/api/schedule')).text) as { timeZone: string };
    const date = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date(startsAt));
    await hughes.goto(`/clinician?date=${date}`);
    const row = hughes.getByRole('table', { name: /^Consultations on / }).getByRole('row').filter({ has: hughes.locator(`time[datetime="${startsAt}"]`) });
    await row.getByRole('button', { name: 'Open consultation', exact: true }).click();
    await expectPath(hughes, `/consultations/${consultationId}`);
    await hughes.getByText(`${BEN_NAME} is in the waiting room.`, { exact: true }).waitFor();
    await hughes.getByRole('button', { name: 'Start consultation', exact: true }).click();
    await Promise.all([expectFlowing(ben, 'audio', 'patient'), expectFlowing(hughes, 'audio', 'clinician')]);

    // Recording with consent, then Ben changes her mind: both pages stop showing it at once.
    await hughes.getByRole('button', { name: 'Ask to record', exact: true }).click();
    await answerDialog(ben, `${HUGHES.displayName} asks to record this consultation (sound only)`, 'Allow');
    await hughes.getByRole('button', { name: 'Start recording', exact: true }).click();
    await indicator(ben).filter({ hasText: 'sound only' }).waitFor();
    await indicator(hughes).filter({ hasText: 'sound only' }).waitFor();
    await sleep(2_000);
    await ben.getByRole('button', { name: 'Stop recording', exact: true }).click();
    await indicator(ben).waitFor({ state: 'detached' });
    await indicator(hughes).waitFor({ state: 'detached' });
    await hughes.getByText('The patient stopped the recording.', { exact: true }).first().waitFor();
    await hughes.getByRole('button', { name: 'Ask to record', exact: true }).waitFor();
    const recordingId = (JSON.parse((await fetchIn(hughes, 'GET', `/api/consultations/${consultationId}`)).text) as { recording: { id: string } })
      .recording.id;

    // He hangs up and comes back; the call picks up again.
    await ben.getByRole('button', { name: 'Hang up', exact: true }).click();
    await ben.getByText('You have left the consultation. You can join again while it lasts.', { exact: true }).waitFor();
    await hughes.getByText(`Waiting for ${BEN_NAME} to join…`, { exact: true }).waitFor();
    await ben.getByRole('button', { name: 'Rejoin', exact: true }).click();
    await Promise.all([expectFlowing(ben, 'audio', 'patient after rejoining'), expectFlowing(hughes, 'audio', 'clinician')]);

    await hughes.getByRole('button', { name: 'End consultation', exact: true }).click();
    await hughes.getByRole('dialog', { name: 'End the consultation?' }).getByRole('button', { name: 'Yes, end it', exact: true }).click();
    await ben.getByText(/^The consultation has ended/).waitFor();

    // What was recorded with his consent is kept: it is among his replays, sound only.
    await ben.goto('/patient/replays');
    const replay = ben.locator(`tr[data-consultation-id="${consultationId}"]`);
    await expect
      .poll(
        async () => {
          if ((await replay.count()) === 0) {
            await ben.getByRole('button', { name: 'Refresh the list', exact: true }).click();
            await sleep(500);
          }
          return replay.count();
        },
        { timeout: 30_000, interval: 500 },
      )
      .toBe(1);
    expect(await replay.innerText()).toContain('Sound only');
    expect(await replay.getByRole('link', { name: /^Play / }).getAttribute('href')).toBe(`/replays/${recordingId}`);
  } catch (error) {
    await explainFailure();
    throw error;
  }
});
