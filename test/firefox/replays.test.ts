/**
 * The demo clinic's two seeded replays in Firefox ESR: Amara's sound-only one and Ben's sound and
 * video one (both real MediaRecorder WebM clips, sealed and served in ranges by the service).
 * Each is found through the patient's "Consultation replays" link, loads with a finite duration, seeks forwards while
 * paused and backwards while playing, and plays on from each point without a media error.
 */
import type { Browser, ElementHandle, Page } from 'puppeteer-core';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { demoPerson, startService, stopAndCheck, type RunningService } from '../browser/support';
import { FirefoxPageWatch, aria, expectHeading, expectPath, explainFailure, getIn, launchFirefox, screenshot, signInPatient, withText } from './support';

let service: RunningService | undefined;
let firefox: Browser | undefined;
const watch = new FirefoxPageWatch();
let amara: Page | undefined;
let ben: Page | undefined;

const AMARA = demoPerson('amara@demo.confidant.test');
const BEN = demoPerson('ben@demo.confidant.test');

beforeAll(async () => {
  [service, firefox] = await Promise.all([startService(), launchFirefox()]);
});

afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail') {
    await explainFailure(amara, 'amara');
    await explainFailure(ben, 'ben');
  }
  watch.assertClean();
});

afterAll(async () => {
  await watch.close();
  await firefox?.close();
  await stopAndCheck(service);
});

/** What the player's media element says about itself. */
interface MediaState {
  currentTime: number;
  duration: number;
  paused: boolean;
  readyState: number;
  networkState: number;
  error: string | null;
  videoWidth: number;
  videoHeight: number;
  /** Firefox's own flag: whether the resource has a sound track. */
  hasAudio: boolean;
  /** Frames shown so far (getVideoPlaybackQuality), which grows only while a picture plays. */
  framesShown: number;
}

function stateOf(video: ElementHandle<HTMLVideoElement>): Promise<MediaState> {
  return video.evaluate((v) => {
    const firefox = v as HTMLVideoElement & { mozHasAudio?: boolean };
    const quality = v.getVideoPlaybackQuality();
    return {
      currentTime: v.currentTime,
      duration: v.duration,
      paused: v.paused,
      readyState: v.readyState,
      networkState: v.networkState,
      error: v.error ? `${v.error.code}: ${v.error.message}` : null,
      videoWidth: v.videoWidth,
      videoHeight: v.videoHeight,
      hasAudio: firefox.mozHasAudio === true,
      framesShown: quality.totalVideoFrames - quality.droppedVideoFrames,
    };
  });
}

/**
 * Seeks to `to` seconds: resolves with where the element landed once `seeked` fires, or fails
 * with the element's state if it does not within 10 s or reports an error.
 */
function seek(video: ElementHandle<HTMLVideoElement>, to: number): Promise<number> {
  return video.evaluate(
    (v, to) =>
      new Promise<number>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no 'seeked' within 10 s of seeking to ${to} (readyState ${v.readyState}, networkState ${v.networkState}, at ${v.currentTime})`)),
          10_000,
        );
        v.addEventListener(
          'seeked',
          () => {
            clearTimeout(timer);
            resolve(v.currentTime);
          },
          { once: true },
        );
        v.addEventListener(
          'error',
          () => {
            clearTimeout(timer);
            reject(new Error(`media error ${v.error?.code}: ${v.error?.message}`));
          },
          { once: true },
        );
        v.currentTime = to;
      }),
    to,
  );
}

/** Playback moves on past `from` by more than half a second, with no media error on the way. */
async function expectPlaysOnFrom(page: Page, video: ElementHandle<HTMLVideoElement>, from: number, what: string) {
  try {
    await page.waitForFunction((v, from) => !!v.error || v.currentTime > from + 0.5, { timeout: 15_000, polling: 100 }, video, from);
  } catch (error) {
    throw new Error(`${what}: playback did not move on from ${from} s: ${JSON.stringify(await stateOf(video))}`, { cause: error });
  }
  expect((await stateOf(video)).error, what).toBeNull();
}

/**
 * A patient opens their one replay through the "Consultation replays" link and plays it: the listed kind and
 * length, the player's metadata, a seek to the middle while paused and playback from there, a
 * seek back to a quarter while playing and playback from there.
 */
async function replay(page: Page, kind: 'Sound only' | 'Sound and video', name: string): Promise<MediaState> {
  await page.locator(aria('link', 'Consultation replays')).click();
  await expectPath(page, '/patient/replays');
  await expectHeading(page, 'Consultation replays');
  const row = await withText(page, 'table tbody tr', new RegExp(kind));
  const durationCell = await row.evaluate((tr) => (tr.querySelector('td.numeric') as HTMLElement | null)?.innerText ?? '');
  const listed = /^(\d+):(\d\d)$/.exec(durationCell.trim());
  expect(listed, `listed duration ${durationCell}`).not.toBeNull();
  const listedSeconds = Number(listed![1]) * 60 + Number(listed![2]);
  const { replays } = JSON.parse((await getIn(page, '/api/replays')).text) as { replays: { id: string; mode: string }[] };
  expect(replays.map((r) => r.mode), `${name}'s replays`).toEqual([kind === 'Sound only' ? 'audio' : 'video']);

  await (await row.waitForSelector('a[href^="/replays/"]'))!.click();
  await expectPath(page, `/replays/${replays[0]!.id}`);
  await withText(page, 'dl.summary-list dd', kind);
  const video = (await page.waitForSelector('video.replay__video')) as ElementHandle<HTMLVideoElement>;
  await video.evaluate((v) => {
    v.muted = true;
  });
  try {
    await page.waitForFunction((v) => !!v.error || (v.readyState >= 1 && Number.isFinite(v.duration)), { timeout: 15_000, polling: 100 }, video);
  } catch (error) {
    throw new Error(`${name}'s replay: no metadata: ${JSON.stringify(await stateOf(video))}`, { cause: error });
  }
  const loaded = await stateOf(video);
  expect(loaded.error, `${name}'s replay`).toBeNull();
  expect(loaded.duration).toBeGreaterThan(2);
  // The player's length is the one the list gave (whole seconds there).
  expect(Math.abs(loaded.duration - listedSeconds), `${loaded.duration} s played, ${listedSeconds} s listed`).toBeLessThan(1.5);
  expect(loaded.hasAudio, `${name}'s replay has sound`).toBe(true);

  // Forwards while paused, to the middle, then play from there.
  const middle = loaded.duration / 2;
  const landed = await seek(video, middle);
  expect(landed).toBeGreaterThan(middle - 1);
  expect(landed).toBeLessThanOrEqual(middle + 0.1);
  await video.evaluate((v) => v.play());
  await expectPlaysOnFrom(page, video, landed, `${name}'s replay from the middle`);

  // Backwards while playing (the clips are a few seconds long: if it reached the end first,
  // it plays again from there), to a quarter, and on again from there.
  const quarter = loaded.duration / 4;
  const back = await seek(video, quarter);
  expect(back).toBeGreaterThan(quarter - 1);
  expect(back).toBeLessThan(middle);
  await video.evaluate((v) => (v.paused ? v.play() : undefined));
  await expectPlaysOnFrom(page, video, back, `${name}'s replay from a quarter`);
  const played = await stateOf(video);
  await video.evaluate((v) => v.pause());
  return played;
}

test("Amara replays her sound-only consultation and Ben his sound-and-video one, seeking in each", async () => {
  const t0 = Date.now();
  const mark = (what: string) => console.log(`replays test: ${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  [amara, ben] = await Promise.all([watch.page(firefox!), watch.page(firefox!)]);
  await Promise.all([signInPatient(amara, service!.baseUrl, AMARA.email), signInPatient(ben, service!.baseUrl, BEN.email)]);
  mark('both signed in');

  const sound = await replay(amara, 'Sound only', 'Amara');
  // Sound only: no picture at all.
  expect(sound.videoWidth).toBe(0);
  expect(sound.framesShown).toBe(0);
  await screenshot(amara, 'firefox-replay-sound-only');
  mark('sound-only replay played');

  const video = await replay(ben, 'Sound and video', 'Ben');
  expect(video.videoWidth).toBeGreaterThan(0);
  expect(video.videoHeight).toBeGreaterThan(0);
  expect(video.framesShown, 'video frames shown while it played').toBeGreaterThan(0);
  await screenshot(ben, 'firefox-replay-sound-and-video');
  mark('sound-and-video replay played');
}, 90_000);
