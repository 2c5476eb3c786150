/**
 * What the clinician's browser records while the patient's camera is off (issue 15): a video
 * consultation between Chloe (patient) and Dr Hughes (GP), recorded with her consent to sound and
 * video; she turns her camera off for a while and on again; the finalised recording is fetched as
 * she would replay it and its frames decoded with ffmpeg. While her camera was off, her half of the
 * picture must be the "camera off" placeholder (her initial on a dark frame), not her last picture
 * frozen. This file runs its own service and database.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
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
let gp: Page;
let patient: Page;
let tmp: string;

const CHLOE = demoPerson('chloe@demo.confidant.test');
const HUGHES = demoPerson('dr.hughes@demo.confidant.test');
const CHLOE_NAME = `${CHLOE.givenName} ${CHLOE.familyName}`;

beforeAll(async () => {
  [service, browser] = await Promise.all([
    startService({ env: { CONSULTATION_JOIN_EARLY_MINUTES: '1440' } }),
    launchBrowser({ extraArgs: ['--autoplay-policy=no-user-gesture-required'] }),
  ]);
  tmp = await mkdtemp(path.join(os.tmpdir(), 'confidant-recorder-frames-'));
  [gpContext, patientContext] = await Promise.all([watch.context(browser, service.baseUrl), watch.context(browser, service.baseUrl)]);
  [gp, patient] = await Promise.all([gpContext.newPage(), patientContext.newPage()]);
  await Promise.all([signInStaff(gp, HUGHES.email, '/clinician'), signInPatient(patient, CHLOE.email)]);
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
      ['patient', patient],
    ] as const) {
      if (!page || page.isClosed()) continue;
      console.log(`${name} page ${page.url()}:\n${await page.locator('main').innerText({ timeout: 2_000 }).catch(() => '(no main)')}\n`);
      await screenshot(page, `recorder-frames-failure-${name}`).catch(() => undefined);
    }
  }
  watch.assertClean();
});

afterAll(async () => {
  await Promise.all([gpContext?.close(), patientContext?.close()]);
  await browser?.close();
  await stopAndCheck(service);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

const controls = (page: Page) => page.getByRole('group', { name: 'Call controls', exact: true });
const button = (page: Page, name: string) => controls(page).getByRole('button', { name, exact: true });
const remoteTag = (page: Page, text: string) => page.locator('.call__remote .call__name .tag', { hasText: text });

async function answerDialog(page: Page, title: string, answer: string) {
  const dialog = page.getByRole('dialog', { name: title });
  await dialog.getByRole('button', { name: answer, exact: true }).click();
  await dialog.waitFor({ state: 'hidden' });
}

/** Video frames the page's peer connection has decoded. */
function framesDecoded(page: Page): Promise<number> {
  return page.evaluate(async () => {
    let frames = 0;
    const pc = window.__confidantPeer;
    if (!pc) return 0;
    (await pc.getStats()).forEach((s: { type: string; kind?: string; framesDecoded?: number }) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded ?? 0;
    });
    return frames;
  });
}
async function videoArriving(page: Page) {
  const first = await framesDecoded(page);
  await expect.poll(() => framesDecoded(page), { timeout: 15_000 }).toBeGreaterThan(first + 10);
}

// ---------------------------------------------------------------------------------------------
// Frames of the recording

const WIDTH = 640; // the recorder's canvas
const HEIGHT = 360;
/** The canvas background behind both halves, #1d2a33. */
const BACKGROUND = [0x1d, 0x2a, 0x33] as const;

/** The frame shown at `ms` of the recording, decoded by ffmpeg, as RGB bytes (also saved as a PNG to look at). */
async function frameAt(file: string, ms: number, name: string): Promise<Buffer> {
  const at = (ms / 1000).toFixed(3);
  const rgb = execFileSync('ffmpeg', ['-v', 'error', '-ss', at, '-i', file, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], {
    maxBuffer: 16 * 1024 * 1024,
  });
  expect(rgb.length, `one ${WIDTH}x${HEIGHT} frame at ${at} s`).toBe(WIDTH * HEIGHT * 3);
  const dir = process.env.CONFIDANT_SCREENSHOT_DIR ?? path.join(os.tmpdir(), 'confidant-browser-screenshots');
  await mkdir(dir, { recursive: true });
  const png = path.join(dir, `recorder-frames-${name}.png`);
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-ss', at, '-i', file, '-frames:v', '1', png]);
  console.log(`recorded frame at ${at} s: ${png}`);
  return rgb;
}

/** The patient's half of a frame (the left one), pixel by pixel. */
function* patientHalf(rgb: Buffer): Generator<[number, number, number]> {
  for (let y = 0; y < HEIGHT; y++) {
    for (let x = 0; x < WIDTH / 2; x++) {
      const i = (y * WIDTH + x) * 3;
      yield [rgb[i]!, rgb[i + 1]!, rgb[i + 2]!];
    }
  }
}

/** Share of the patient's half that is the plain background (within what VP8 does to a flat colour). */
function backgroundShare(rgb: Buffer): number {
  let n = 0;
  let bg = 0;
  for (const [r, g, b] of patientHalf(rgb)) {
    n++;
    if (Math.max(Math.abs(r - BACKGROUND[0]), Math.abs(g - BACKGROUND[1]), Math.abs(b - BACKGROUND[2])) <= 24) bg++;
  }
  return bg / n;
}

/** Mean absolute difference, per channel, between two frames' patient halves (0–255). */
function difference(a: Buffer, b: Buffer): number {
  const pa = [...patientHalf(a)];
  const pb = [...patientHalf(b)];
  let sum = 0;
  for (let i = 0; i < pa.length; i++) for (let c = 0; c < 3; c++) sum += Math.abs(pa[i]![c]! - pb[i]![c]!);
  return sum / (pa.length * 3);
}

// ---------------------------------------------------------------------------------------------

test('the recording shows a camera-off placeholder while the patient’s camera is off, not her last frame', { timeout: 180_000 }, async () => {
  // Chloe books an audio consultation with Dr Hughes and joins; he starts it.
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
  await patient.getByLabel('Reason for the consultation', { exact: true }).fill('A rash on my arm');
  await patient.getByRole('button', { name: 'Book consultation', exact: true }).click();
  await expectPath(patient, '/patient/appointments');
  await patient
    .getByRole('list', { name: 'Upcoming', exact: true })
    .locator(':scope > li')
    .filter({ has: patient.locator(`h3 time[datetime="${startsAt}"]`) })
    .getByRole('button', { name: 'Join consultation', exact: true })
    .click({ timeout: 45_000 });
  await patient.waitForURL(/\/consultations\/[0-9a-f-]{36}$/);
  const consultationId = new URL(patient.url()).pathname.split('/').pop()!;
  await gp.getByRole('table', { name: 'Waiting room' }).getByRole('row').filter({ hasText: CHLOE_NAME }).getByRole('button', { name: 'Start consultation', exact: true }).click();
  await expectPath(gp, `/consultations/${consultationId}`);
  await gp.locator('.call__status').getByText(`Connected with ${CHLOE_NAME}.`, { exact: true }).waitFor();

  // Recorded with her consent to sound, then to video once the call is in video.
  await gp.getByRole('button', { name: 'Ask to record', exact: true }).click();
  await answerDialog(patient, `${HUGHES.displayName} asks to record this consultation (sound only)`, 'Allow');
  await gp.getByRole('button', { name: 'Start recording', exact: true }).click();
  await gp.getByRole('status').filter({ hasText: /^● Recording sound only$/ }).waitFor();
  await button(gp, 'Switch to video').click();
  await answerDialog(patient, `${HUGHES.displayName} asks to switch to video`, 'Agree');
  await answerDialog(patient, `${HUGHES.displayName} asks to record video too`, 'Allow');
  await gp.getByRole('status').filter({ hasText: /^● Recording video recorded$/ }).waitFor();
  await videoArriving(gp);
  // Several seconds of her live picture (a keyframe every 2 s: what was recorded before the
  // consent to video is cut at finalisation, up to the next keyframe).
  await sleep(5_000);

  // Her camera off for a while: the GP's page shows her initial, and is told so.
  const offAt = Date.now();
  await button(patient, 'Camera off').click();
  await remoteTag(gp, 'Camera off').waitFor();
  await sleep(6_000);
  await screenshot(gp, 'recorder-frames-gp-sees-camera-off', { fullPage: false });
  const onAt = Date.now();
  await button(patient, 'Camera on').click();
  await remoteTag(gp, 'Camera off').waitFor({ state: 'detached' });
  await videoArriving(gp);
  await sleep(4_000);

  // The GP ends the consultation: the recording is finished and finalised.
  await button(gp, 'End consultation').click();
  await gp.getByRole('dialog', { name: 'End the consultation?' }).getByRole('button', { name: 'Yes, end it', exact: true }).click();
  await gp.getByText(/^The consultation has ended/).waitFor({ timeout: 30_000 });
  const consultation = JSON.parse((await fetchIn(patient, 'GET', `/api/consultations/${consultationId}`)).text) as { recording: { id: string } };
  const recordingId = consultation.recording.id;
  let replay: { recordedAt: string; mode: string; durationMs: number } | null = null;
  await expect
    .poll(
      async () => {
        const res = await fetchIn(patient, 'GET', `/api/recordings/${recordingId}`);
        if (res.status === 200) replay = JSON.parse(res.text);
        return res.status;
      },
      { timeout: 30_000 },
    )
    .toBe(200);
  expect(replay!.mode).toBe('video');

  // The recording as she replays it.
  const media = await patient.request.get(`/api/recordings/${recordingId}/media`);
  expect(media.status()).toBe(200);
  const file = path.join(tmp, `${recordingId}.webm`);
  await writeFile(file, await media.body());

  // Recording time ≈ wall time since the server created the recording (the recorder started a moment later).
  const recordedAt = new Date(replay!.recordedAt).getTime();
  const offMs = offAt - recordedAt;
  const onMs = onAt - recordedAt;
  console.log(`recorder-frames: camera off from ${offMs} ms to ${onMs} ms of a ${replay!.durationMs} ms recording`);
  expect(onMs - offMs).toBeGreaterThan(5_000);
  expect(replay!.durationMs).toBeGreaterThan(onMs + 2_000);

  const live = await frameAt(file, offMs - 1_500, 'live');
  const off = await frameAt(file, offMs + 3_000, 'camera-off');
  const offLater = await frameAt(file, onMs - 800, 'camera-off-later');
  const back = await frameAt(file, onMs + 3_000, 'camera-on-again');
  const shares = { live: backgroundShare(live), off: backgroundShare(off), offLater: backgroundShare(offLater), back: backgroundShare(back) };
  const diff = difference(live, off);
  console.log(`recorder-frames: background share of the patient's half ${JSON.stringify(shares)}; live vs camera-off differ by ${diff.toFixed(1)}`);

  // Her live picture fills much of her half; with the camera off it is the placeholder: the plain
  // background but for her initial and "Camera off" (a frozen picture would be the live one again).
  expect(shares.live).toBeLessThan(0.6);
  expect(shares.off).toBeGreaterThan(0.85);
  expect(shares.offLater).toBeGreaterThan(0.85);
  expect(diff).toBeGreaterThan(15);
  // And her picture again once her camera is back on.
  expect(shares.back).toBeLessThan(0.6);
});
