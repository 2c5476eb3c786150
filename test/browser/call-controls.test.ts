/**
 * The call's own controls, in one consultation between Chloe (patient) and Dr Hughes (GP), with
 * real media from Chromium's fake devices and checked with getStats on the page's current
 * RTCPeerConnection (`window.__confidantPeer`, the app's debugging handle):
 * mute and unmute, camera off and on in video, back to audio, a signalling socket that goes
 * silent (half-open) and one that drops, both of which the page recovers from by itself. This file runs its own service and database,
 * so the demo people it uses are in no other file's way.
 */
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
let gpContext: BrowserContext;
let patientContext: BrowserContext;
// Signed in once for the whole file: a second TOTP sign-in would wait for the next 30 s step.
let gp: Page;
let patient: Page;
/** Set once the call is up; each later test needs it (they all happen in the same consultation). */
let callUp = false;

const CHLOE = demoPerson('chloe@demo.confidant.test');
const HUGHES = demoPerson('dr.hughes@demo.confidant.test');
const CHLOE_NAME = `${CHLOE.givenName} ${CHLOE.familyName}`;

/** A socket the test can make deaf: from then on the page is handed none of its messages, as if the connection had gone half-open. */
type TestSocket = WebSocket & { __testDeaf?: boolean };

/**
 * Test instrumentation (never in web/src): every camera track a page opens, and every WebSocket
 * it makes, each of which the test can make deaf.
 */
function instrument() {
  const w = window as unknown as { __testCameraTracks: MediaStreamTrack[]; __testSockets: TestSocket[] };
  w.__testCameraTracks = [];
  w.__testSockets = [];
  const Native = window.WebSocket;
  const onmessage = Object.getOwnPropertyDescriptor(Native.prototype, 'onmessage')!;
  window.WebSocket = class extends Native {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols);
      const ws: TestSocket = this;
      w.__testSockets.push(ws);
      Object.defineProperty(ws, 'onmessage', {
        get: () => onmessage.get!.call(ws),
        set: (handler: ((event: MessageEvent) => void) | null) =>
          onmessage.set!.call(ws, handler && ((event: MessageEvent) => ws.__testDeaf || handler.call(ws, event))),
      });
    }
  };
  const devices = navigator.mediaDevices;
  if (!devices) return; // about:blank
  const original = devices.getUserMedia.bind(devices);
  devices.getUserMedia = async (constraints?: MediaStreamConstraints) => {
    const stream = await original(constraints);
    w.__testCameraTracks.push(...stream.getVideoTracks());
    return stream;
  };
}

beforeAll(async () => {
  [service, browser] = await Promise.all([
    // A consultation opens up to a day before it starts, so the earliest slot can be joined at once.
    // The pages ping every 2 s (the server tells them), so a silent socket shows in seconds.
    startService({ env: { CONSULTATION_JOIN_EARLY_MINUTES: '1440', SIGNAL_PING_SECONDS: '2' } }),
    launchBrowser({ extraArgs: ['--autoplay-policy=no-user-gesture-required'] }),
  ]);
  [gpContext, patientContext] = await Promise.all([watch.context(browser, service.baseUrl), watch.context(browser, service.baseUrl)]);
  await Promise.all([gpContext.addInitScript(instrument), patientContext.addInitScript(instrument)]);
  [gp, patient] = await Promise.all([gpContext.newPage(), patientContext.newPage()]);
  await Promise.all([signInStaff(gp, HUGHES.email, '/clinician'), signInPatient(patient, CHLOE.email)]);
  // Dr Hughes works around the clock, so his earliest free slot starts within minutes.
  const gpId = (await sessionIn(gp)).account!.id;
  const hours = await fetchIn(gp, 'PUT', `/api/clinicians/${gpId}/availability`, {
    rules: [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, start: '00:00', end: '24:00' })),
  });
  expect(hours.status, hours.text).toBe(200);
});

afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail') await explainFailure();
  watch.assertClean();
});

afterAll(async () => {
  await Promise.all([gpContext?.close(), patientContext?.close()]);
  await browser?.close();
  await stopAndCheck(service);
});

// ---------------------------------------------------------------------------------------------
// What the pages' peer connections say

interface Received {
  audioPackets: number;
  /** Grows while sound (Chromium's fake microphone beeps) arrives; stands still on silence. */
  audioEnergy: number;
  videoFrames: number;
}

function received(page: Page): Promise<Received> {
  return page.evaluate(async () => {
    const out = { audioPackets: 0, audioEnergy: 0, videoFrames: 0 };
    const pc = window.__confidantPeer;
    if (!pc) return out;
    (await pc.getStats()).forEach((s: { type: string; kind?: string; packetsReceived?: number; totalAudioEnergy?: number; framesDecoded?: number }) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'audio') {
        out.audioPackets += s.packetsReceived ?? 0;
        out.audioEnergy += s.totalAudioEnergy ?? 0;
      } else if (s.kind === 'video') {
        out.videoFrames += s.framesDecoded ?? 0;
      }
    });
    return out;
  });
}

interface Sent {
  /** The microphone track on the audio sender: enabled or not, or null when there is none. */
  micEnabled: boolean | null;
  /** Whether a camera track is on a sender. */
  camera: boolean;
  /** The sound the app hands to WebRTC (the media-source stats): stands still while muted. */
  audioSourceEnergy: number;
  videoFramesEncoded: number;
}

function sent(page: Page): Promise<Sent> {
  return page.evaluate(async () => {
    const out = { micEnabled: null as boolean | null, camera: false, audioSourceEnergy: 0, videoFramesEncoded: 0 };
    const pc = window.__confidantPeer;
    if (!pc) return out;
    for (const s of pc.getSenders()) {
      if (s.track?.kind === 'audio') out.micEnabled = s.track.enabled;
      if (s.track?.kind === 'video') out.camera = true;
    }
    (await pc.getStats()).forEach((s: { type: string; kind?: string; totalAudioEnergy?: number; framesEncoded?: number }) => {
      if (s.type === 'media-source' && s.kind === 'audio') out.audioSourceEnergy += s.totalAudioEnergy ?? 0;
      if (s.type === 'outbound-rtp' && s.kind === 'video') out.videoFramesEncoded += s.framesEncoded ?? 0;
    });
    return out;
  });
}

/** Camera tracks the page opened that are still live (the camera light is on while any is). */
function liveCameraTracks(page: Page): Promise<number> {
  return page.evaluate(
    () => (window as unknown as { __testCameraTracks: MediaStreamTrack[] }).__testCameraTracks.filter((t) => t.readyState === 'live').length,
  );
}

/**
 * A counter grows: it is above zero, and more than `step` higher a moment later. For sound
 * energy the step is well above the decoder's noise on silence (about 1e-9 a second) and well
 * below what the fake microphone's beeps add (about 0.25 a second).
 */
async function expectGrowing(read: () => Promise<number>, what: string, step = 0) {
  await expect.poll(read, { timeout: 15_000, message: `${what}: some` }).toBeGreaterThan(0);
  const first = await read();
  await expect.poll(read, { timeout: 10_000, message: `${what}: still growing` }).toBeGreaterThan(first + step);
}

/** A counter stands still: it grows by at most `noise` over two seconds (polled, as media in flight drains first). */
async function expectStill(read: () => Promise<number>, what: string, noise = 0) {
  await expect
    .poll(
      async () => {
        const before = await read();
        await sleep(2_000);
        return (await read()) - before;
      },
      { timeout: 15_000, interval: 0, message: `${what}: stands still` },
    )
    .toBeLessThanOrEqual(noise);
}

const ENERGY_STEP = 1e-3;
const ENERGY_NOISE = 1e-6;
const audioFrom = (page: Page, who: string) => expectGrowing(async () => (await received(page)).audioEnergy, `sound arriving at ${who}`, ENERGY_STEP);
const videoFrom = (page: Page, who: string) => expectGrowing(async () => (await received(page)).videoFrames, `video frames decoded by ${who}`);

// ---------------------------------------------------------------------------------------------
// What the pages show

const status = (page: Page) => page.locator('.call__status');
/** The "Muted" / "Camera off" tags next to the other party's name. */
const remoteTag = (page: Page, text: 'Muted' | 'Camera off') => page.locator('.call__remote .call__name .tag', { hasText: text });
/** The line next to the controls that says what the call is now ("Now: audio call" / "Now: video call"). */
const modeNow = (page: Page) => page.locator('.call__mode');
/** The status near the controls that says you are muted (in audio there is no preview of yourself). */
const youAreMuted = (page: Page) => page.getByRole('status').filter({ hasText: 'You are muted' });
/** Whether the other party's picture is shown, or their initial in its place. */
const showsRemote = async (page: Page) => ({
  video: await page.locator('.call__remote-video').isVisible(),
  avatar: await page.locator('.call__avatar').isVisible(),
});
const controls = (page: Page) => page.getByRole('group', { name: 'Call controls', exact: true });
const button = (page: Page, name: string) => controls(page).getByRole('button', { name, exact: true });

/** Chloe books Dr Hughes's earliest slot (audio only), joins, and he starts it: sound both ways. */
async function bookJoinAndStart() {
  await patient.goto('/patient/book');
  await expectHeading(patient, 'Book a consultation');
  await patient.getByLabel('GP', { exact: true }).selectOption({ label: HUGHES.displayName });
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
  await patient.getByLabel('Reason for the consultation', { exact: true }).fill('Dizzy spells when standing up');
  await patient.getByRole('button', { name: 'Book consultation', exact: true }).click();
  await expectPath(patient, '/patient/appointments');
  await patient
    .getByRole('list', { name: 'Upcoming', exact: true })
    .locator(':scope > li')
    .filter({ has: patient.locator(`h3 time[datetime="${startsAt}"]`) })
    .getByRole('button', { name: 'Join consultation', exact: true })
    .click({ timeout: 45_000 });
  await patient.waitForURL(/\/consultations\/[0-9a-f-]{36}$/);
  await expectHeading(patient, `Consultation with ${HUGHES.displayName}`);
  const consultationId = new URL(patient.url()).pathname.split('/').pop()!;

  const row = gp.getByRole('table', { name: 'Waiting room' }).getByRole('row').filter({ hasText: CHLOE_NAME });
  await row.getByRole('button', { name: 'Start consultation', exact: true }).click();
  await expectPath(gp, `/consultations/${consultationId}`);
  await Promise.all([audioFrom(patient, 'the patient'), audioFrom(gp, 'the GP')]);
  await status(patient).getByText(`Connected with ${HUGHES.displayName}.`, { exact: true }).waitFor();
  await status(gp).getByText(`Connected with ${CHLOE_NAME}.`, { exact: true }).waitFor();
  // Both pages say what the call is now, besides what was booked.
  for (const page of [gp, patient]) {
    expect(await modeNow(page).innerText()).toBe('Now: audio call');
    await page.locator('.call__meta').getByText(/^Audio only appointment booked for/).waitFor();
  }
}

/** What each page showed when something went wrong, to read beside the error. */
async function explainFailure() {
  for (const [name, page] of [
    ['gp', gp],
    ['patient', patient],
  ] as const) {
    if (!page || page.isClosed()) continue;
    const text = await page.locator('main').innerText({ timeout: 2_000 }).catch(() => '(no main)');
    console.log(`${name} page ${page.url()}:\n${text}\n`);
    await screenshot(page, `call-controls-failure-${name}`).catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------

test('Chloe joins and Dr Hughes starts an audio call: sound both ways', async () => {
  await bookJoinAndStart();
  callUp = true;
});

test('the patient mutes: the GP sees it and hears silence; unmuting brings the sound back', async () => {
  expect(callUp, 'the call is up').toBe(true);
  // Nobody is muted to begin with.
  await expect.poll(() => remoteTag(gp, 'Muted').count()).toBe(0);
  await expect.poll(() => remoteTag(patient, 'Muted').count()).toBe(0);
  expect((await sent(patient)).micEnabled).toBe(true);

  expect(await youAreMuted(patient).count()).toBe(0);

  await button(patient, 'Mute').click();
  // Her own page: the button is pressed and now offers to unmute, and a status says she is muted
  // (an audio call has no preview of herself to carry the "Muted" tag).
  await expect.poll(() => button(patient, 'Unmute').getAttribute('aria-pressed')).toBe('true');
  await youAreMuted(patient).waitFor();
  expect(await youAreMuted(gp).count()).toBe(0);
  // The GP's page says so next to her name; his own microphone is not shown as muted to her.
  await remoteTag(gp, 'Muted').waitFor();
  expect(await remoteTag(patient, 'Muted').count()).toBe(0);
  // Her microphone track is disabled on the sender: what she hands to WebRTC, and what the GP
  // receives, is silence, while packets keep arriving (the call itself is still up).
  expect((await sent(patient)).micEnabled).toBe(false);
  await Promise.all([
    expectStill(async () => (await sent(patient)).audioSourceEnergy, 'sound the patient sends while muted'),
    expectStill(async () => (await received(gp)).audioEnergy, 'sound the GP receives while she is muted', ENERGY_NOISE),
  ]);
  await expectGrowing(async () => (await received(gp)).audioPackets, 'audio packets at the GP while she is muted');
  // The GP is not muted: she still hears him.
  await audioFrom(patient, 'the patient while she is muted');

  await button(patient, 'Unmute').click();
  await expect.poll(() => button(patient, 'Mute').getAttribute('aria-pressed')).toBe('false');
  await youAreMuted(patient).waitFor({ state: 'detached' });
  await remoteTag(gp, 'Muted').waitFor({ state: 'detached' });
  expect((await sent(patient)).micEnabled).toBe(true);
  await audioFrom(gp, 'the GP after she unmutes');
});

test('in video, the patient turns her camera off: the GP sees it stop; on again, frames resume', async () => {
  expect(callUp, 'the call is up').toBe(true);
  expect(await liveCameraTracks(patient)).toBe(0);
  await button(gp, 'Switch to video').click();
  const ask = patient.getByRole('dialog', { name: `${HUGHES.displayName} asks to switch to video` });
  await ask.getByRole('button', { name: 'Agree', exact: true }).click();
  await ask.waitFor({ state: 'hidden' });
  await Promise.all([videoFrom(gp, 'the GP'), videoFrom(patient, 'the patient')]);
  expect((await sent(patient)).camera).toBe(true);
  expect(await remoteTag(gp, 'Camera off').count()).toBe(0);
  await expect.poll(() => patient.locator('.call__local').isVisible()).toBe(true);
  // Both pages say the call is now in video; the heading still says what was booked.
  for (const page of [gp, patient]) {
    await expect.poll(() => modeNow(page).innerText()).toBe('Now: video call');
    await page.locator('.call__meta').getByText(/^Audio only appointment booked for/).waitFor();
  }
  expect(await showsRemote(gp)).toEqual({ video: true, avatar: false });
  await screenshot(gp, 'call-controls-gp-video', { fullPage: false });

  await button(patient, 'Camera off').click();
  // Her page: the button is pressed, her preview is gone, her camera is closed (its light goes off).
  await expect.poll(() => button(patient, 'Camera on').getAttribute('aria-pressed')).toBe('true');
  await expect.poll(() => patient.locator('.call__local').isVisible()).toBe(false);
  await expect.poll(() => liveCameraTracks(patient)).toBe(0);
  await expect.poll(async () => (await sent(patient)).camera).toBe(false);
  // The GP's page says so, and shows her initial instead of her last frame frozen; no more of
  // her frames arrive; his still reach her.
  await remoteTag(gp, 'Camera off').waitFor();
  await expect.poll(() => showsRemote(gp)).toEqual({ video: false, avatar: true });
  await Promise.all([
    expectStill(async () => (await received(gp)).videoFrames, 'her video frames decoded by the GP while her camera is off'),
    expectStill(async () => (await sent(patient)).videoFramesEncoded, 'video frames she encodes while her camera is off'),
  ]);
  await videoFrom(patient, 'the patient while her own camera is off');
  await screenshot(gp, 'call-controls-gp-sees-camera-off', { fullPage: false });

  await button(patient, 'Camera on').click();
  await expect.poll(() => button(patient, 'Camera off').getAttribute('aria-pressed')).toBe('false');
  await remoteTag(gp, 'Camera off').waitFor({ state: 'detached' });
  await expect.poll(() => liveCameraTracks(patient)).toBe(1);
  await videoFrom(gp, 'the GP after her camera is back on');
  expect((await sent(patient)).camera).toBe(true);
  expect(await patient.locator('.call__local').isVisible()).toBe(true);
  expect(await showsRemote(gp)).toEqual({ video: true, avatar: false });
});

test('agreeing to video again turns her camera on, though she had turned it off in the last video period', async () => {
  expect(callUp, 'the call is up').toBe(true);
  await button(patient, 'Camera off').click();
  await expect.poll(() => liveCameraTracks(patient)).toBe(0);
  await button(gp, 'Switch to audio').click();
  await button(patient, 'Switch to video').waitFor();
  await expect.poll(() => modeNow(patient).innerText()).toBe('Now: audio call');

  await button(gp, 'Switch to video').click();
  const ask = patient.getByRole('dialog', { name: `${HUGHES.displayName} asks to switch to video` });
  // What she agrees to says her camera will turn on: so it does.
  await ask.getByText(/Your camera will turn on\./).waitFor();
  await ask.getByRole('button', { name: 'Agree', exact: true }).click();
  await ask.waitFor({ state: 'hidden' });
  await expect.poll(() => button(patient, 'Camera off').getAttribute('aria-pressed')).toBe('false');
  await expect.poll(() => liveCameraTracks(patient)).toBe(1);
  await videoFrom(gp, 'the GP after she agreed to video again');
  await expect.poll(() => showsRemote(gp)).toEqual({ video: true, avatar: false });
  expect(await patient.locator('.call__local').isVisible()).toBe(true);
});

test('switching back to audio: neither side sends video any more, both pages show an audio call', async () => {
  expect(callUp, 'the call is up').toBe(true);
  await button(gp, 'Switch to audio').click();
  for (const [who, page] of [
    ['GP', gp],
    ['patient', patient],
  ] as const) {
    // The controls are an audio call's again: no camera button, and "Switch to video" on offer.
    await button(page, 'Switch to video').waitFor();
    expect(await modeNow(page).innerText(), who).toBe('Now: audio call');
    expect(await controls(page).getByRole('button', { name: /^Camera (on|off)$/ }).count(), who).toBe(0);
    // No video shown: the other party's avatar instead of their picture, no preview of one's own.
    expect(await page.locator('.call__remote-video').isVisible(), who).toBe(false);
    expect(await page.locator('.call__avatar').isVisible(), who).toBe(true);
    expect(await page.locator('.call__local').isVisible(), who).toBe(false);
    // No camera on a sender, and every camera the page opened is closed.
    await expect.poll(async () => (await sent(page)).camera, { message: `${who} sends a camera track` }).toBe(false);
    await expect.poll(() => liveCameraTracks(page), { message: `${who}'s live camera tracks` }).toBe(0);
  }
  await Promise.all([
    expectStill(async () => (await received(gp)).videoFrames, 'video frames decoded by the GP in audio'),
    expectStill(async () => (await received(patient)).videoFrames, 'video frames decoded by the patient in audio'),
    expectStill(async () => (await sent(gp)).videoFramesEncoded, 'video frames the GP encodes in audio'),
    expectStill(async () => (await sent(patient)).videoFramesEncoded, 'video frames the patient encodes in audio'),
  ]);
  // Sound carries on both ways.
  await Promise.all([audioFrom(gp, 'the GP in audio'), audioFrom(patient, 'the patient in audio')]);
  await screenshot(patient, 'call-controls-patient-back-to-audio', { fullPage: false });
});

/** The page's WebSockets: how many it made, how many are open, and how many of those are deaf. */
function socketsOf(page: Page) {
  return page.evaluate(() => {
    const all = (window as unknown as { __testSockets: TestSocket[] }).__testSockets;
    const open = all.filter((ws) => ws.readyState === WebSocket.OPEN);
    return { made: all.length, open: open.length, deaf: open.filter((ws) => ws.__testDeaf).length };
  });
}

/**
 * The page's peer connection is connected and stays the same one for two seconds: after a
 * signalling reconnect the GP may offer afresh (a new connection, whose counters start at zero).
 */
async function peerSettled(page: Page, who: string) {
  await expect
    .poll(
      async () => {
        const mark = () =>
          page.evaluate(() => {
            const pc = window.__confidantPeer as (RTCPeerConnection & { __testMark?: number }) | null | undefined;
            if (!pc || pc.connectionState !== 'connected') return null;
            return (pc.__testMark ??= Math.random());
          });
        const first = await mark();
        await sleep(2_000);
        return first !== null && (await mark()) === first;
      },
      { timeout: 15_000, interval: 0, message: `${who}'s peer connection settles` },
    )
    .toBe(true);
}

test('the patient’s signalling socket goes silent without closing: the page replaces it and the call carries on', async () => {
  expect(callUp, 'the call is up').toBe(true);
  // Through everything so far (pings every 2 s, all answered) each page kept its one socket.
  expect(await socketsOf(patient)).toEqual({ made: 1, open: 1, deaf: 0 });
  expect(await socketsOf(gp)).toEqual({ made: 1, open: 1, deaf: 0 });

  // Her socket stays open but nothing it receives reaches the page any more (her pings still
  // reach the server, which keeps answering): a half-open connection, as the page sees it.
  await patient.evaluate(() => {
    for (const ws of (window as unknown as { __testSockets: TestSocket[] }).__testSockets) ws.__testDeaf = true;
  });
  const deafAt = Date.now();
  // About two ping intervals later the page gives up on it and opens a new one.
  await expect.poll(() => socketsOf(patient), { timeout: 15_000 }).toEqual({ made: 2, open: 1, deaf: 0 });
  const replacedAfter = Date.now() - deafAt;
  console.log(`call-controls: the silent socket was replaced ${replacedAfter} ms after it went deaf (pings every 2000 ms)`);
  expect(replacedAfter).toBeLessThan(10_000);
  await status(patient).getByText(`Connected with ${HUGHES.displayName}.`, { exact: true }).waitFor();
  await status(gp).getByText(`Connected with ${CHLOE_NAME}.`, { exact: true }).waitFor();

  // Both ways through the new socket: her mute reaches the GP, his reaches her; sound carries on.
  await button(patient, 'Mute').click();
  await remoteTag(gp, 'Muted').waitFor();
  await button(patient, 'Unmute').click();
  await remoteTag(gp, 'Muted').waitFor({ state: 'detached' });
  await button(gp, 'Mute').click();
  await remoteTag(patient, 'Muted').waitFor();
  await button(gp, 'Unmute').click();
  await remoteTag(patient, 'Muted').waitFor({ state: 'detached' });
  await Promise.all([peerSettled(patient, 'the patient'), peerSettled(gp, 'the GP')]);
  await Promise.all([audioFrom(gp, 'the GP after the silent socket'), audioFrom(patient, 'the patient after the silent socket')]);
  expect(await socketsOf(patient)).toEqual({ made: 2, open: 1, deaf: 0 });
});

test('the patient’s signalling connection drops: the page reconnects by itself and the call carries on', { timeout: 90_000 }, async () => {
  expect(callUp, 'the call is up').toBe(true);
  const sockets = () =>
    patient.evaluate(() => {
      const all = (window as unknown as { __testSockets: WebSocket[] }).__testSockets;
      return { made: all.length, open: all.filter((ws) => ws.readyState === WebSocket.OPEN).length };
    });
  const before = await sockets();
  expect(before.open).toBe(1);
  await patient.evaluate(() => {
    (window as unknown as { __testPeerBefore: RTCPeerConnection | null | undefined }).__testPeerBefore = window.__confidantPeer;
  });

  // The network goes (an open WebSocket survives Chromium's offline emulation, so the page's own
  // socket is closed under it): new connections fail until it comes back.
  await patientContext.setOffline(true);
  await patient.evaluate(() => {
    for (const ws of (window as unknown as { __testSockets: WebSocket[] }).__testSockets) if (ws.readyState === WebSocket.OPEN) ws.close();
  });
  await status(patient).getByText('Connection lost. Reconnecting…', { exact: true }).waitFor();
  // The server saw her go.
  await status(gp).getByText(`Waiting for ${CHLOE_NAME} to join…`, { exact: true }).waitFor();
  // She mutes while disconnected: that cannot reach the GP now.
  await button(patient, 'Mute').click();
  await sleep(3_000);
  expect(await remoteTag(gp, 'Muted').count()).toBe(0);
  const whileOffline = await sockets();
  expect(whileOffline.open).toBe(0);
  // It kept trying (with backoff) while the network was down.
  expect(whileOffline.made).toBeGreaterThanOrEqual(before.made + 2);
  await patientContext.setOffline(false);

  // Back by itself, without a reload: one open socket, both pages connected again.
  await status(patient).getByText(`Connected with ${HUGHES.displayName}.`, { exact: true }).waitFor({ timeout: 20_000 });
  await status(gp).getByText(`Connected with ${CHLOE_NAME}.`, { exact: true }).waitFor();
  expect((await sockets()).open).toBe(1);
  // Her mute state, set while she was away, reached the GP once she was back.
  await remoteTag(gp, 'Muted').waitFor();
  const renegotiated = await patient.evaluate(
    () => (window as unknown as { __testPeerBefore: RTCPeerConnection | null }).__testPeerBefore !== window.__confidantPeer,
  );
  console.log(`call-controls: after the signalling reconnect the peer connection was ${renegotiated ? 'replaced (a fresh offer)' : 'kept'}`);

  // Live changes reach the other side through the new socket: unmute, and sound both ways.
  await button(patient, 'Unmute').click();
  await remoteTag(gp, 'Muted').waitFor({ state: 'detached' });
  await Promise.all([audioFrom(gp, 'the GP after the reconnect'), audioFrom(patient, 'the patient after the reconnect')]);
  // A mode switch goes through too: the GP asks, she is asked, video flows both ways.
  await button(gp, 'Switch to video').click();
  const ask = patient.getByRole('dialog', { name: `${HUGHES.displayName} asks to switch to video` });
  await ask.getByRole('button', { name: 'Agree', exact: true }).click();
  await ask.waitFor({ state: 'hidden' });
  await Promise.all([videoFrom(gp, 'the GP after the reconnect'), videoFrom(patient, 'the patient after the reconnect')]);

  // And the end of the consultation reaches her.
  await button(gp, 'End consultation').click();
  await gp.getByRole('dialog', { name: 'End the consultation?' }).getByRole('button', { name: 'Yes, end it', exact: true }).click();
  await patient.getByText(/^The consultation has ended/).waitFor();
  await expect.poll(() => liveCameraTracks(patient)).toBe(0);
});
