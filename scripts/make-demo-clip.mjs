// Generates the demo recording fixtures: real, raw (unfinalised) Chromium MediaRecorder output.
//
//   node scripts/make-demo-clip.mjs
//
// writes
//   src/demo/assets/demo-consultation.webm        video/webm;codecs=vp8,opus, 320x240, ~4 s
//   src/demo/assets/demo-consultation-audio.webm  audio/webm;codecs=opus, ~4 s
//
// It needs a Chromium on the machine (Debian: `apt-get install chromium`, which puts it at
// /usr/bin/chromium; set CHROMIUM=/path/to/chrome to use another) and playwright-core, a
// devDependency. Chromium's fake capture devices supply the camera (a test pattern) and the
// microphone (a beep), so the output differs from run to run but always has the same shape.
//
// The video is recorded the way the call page records: the camera is drawn into a 320x240 canvas
// and the canvas's captureStream(15) track is recorded together with the microphone track, with
// MediaRecorder's timeslice at 1000 ms, so the file is the concatenation of ~1 s chunks exactly
// as the server receives them: unknown-size Segment, no Duration, no SeekHead, no Cues
// (src/modules/recordings/webm.ts finalises it). Two traits of Chrome's output worth knowing, both
// kept on purpose because web/src/call/recorder.ts records the same way: a default 2D canvas has an
// alpha channel, so the VP8 frames come in BlockGroups carrying alpha as BlockAdditions; and Chrome
// starts a Cluster per timeslice, not per keyframe (this clip has a single VP8 keyframe, at 0).
import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const root = path.resolve(import.meta.dirname, '..');
const outDir = path.join(root, 'src/demo/assets');
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const RECORD_MS = 4000;

const browser = await chromium.launch({
  executablePath,
  args: [
    '--use-fake-device-for-media-stream',
    '--use-fake-ui-for-media-stream',
    '--autoplay-policy=no-user-gesture-required',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
  ],
});

try {
  const page = await browser.newPage();
  // getUserMedia needs a secure context, which about:blank and data: pages are not; http://localhost
  // is one. Playwright answers the request itself, so no server runs.
  await page.route('http://localhost/', (route) =>
    route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>demo clip</title>' }),
  );
  await page.goto('http://localhost/');

  /** Runs in the page: records `ms` of `kind` ('av' | 'audio') and returns the blobs' bytes, base64. */
  const record = (kind) =>
    page.evaluate(
      async ({ kind, ms }) => {
        const cam = await navigator.mediaDevices.getUserMedia({
          audio: true,
          video: kind === 'av' ? { width: 320, height: 240 } : false,
        });
        let stream;
        let mimeType;
        let options;
        let stopDrawing = () => {};
        if (kind === 'av') {
          const video = document.createElement('video');
          video.muted = true;
          video.playsInline = true;
          video.srcObject = cam;
          await video.play();
          const canvas = document.createElement('canvas');
          canvas.width = 320;
          canvas.height = 240;
          const ctx = canvas.getContext('2d');
          const draw = () => ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
          draw();
          // requestAnimationFrame is throttled in a headless/background page; a timer is steady.
          const timer = setInterval(draw, 1000 / 30);
          stopDrawing = () => clearInterval(timer);
          stream = new MediaStream([...canvas.captureStream(15).getVideoTracks(), ...cam.getAudioTracks()]);
          mimeType = 'video/webm;codecs=vp8,opus';
          options = { mimeType, videoBitsPerSecond: 150_000, audioBitsPerSecond: 32_000 };
        } else {
          stream = new MediaStream(cam.getAudioTracks());
          mimeType = 'audio/webm;codecs=opus';
          options = { mimeType, audioBitsPerSecond: 32_000 };
        }
        if (!MediaRecorder.isTypeSupported(mimeType)) throw new Error(`${mimeType} is not supported`);
        const recorder = new MediaRecorder(stream, options);
        const chunks = [];
        recorder.ondataavailable = (e) => {
          if (e.data.size > 0) chunks.push(e.data);
        };
        const stopped = new Promise((resolve, reject) => {
          recorder.onstop = resolve;
          recorder.onerror = (e) => reject(e.error ?? new Error('MediaRecorder error'));
        });
        recorder.start(1000);
        await new Promise((r) => setTimeout(r, ms));
        recorder.stop();
        await stopped;
        stopDrawing();
        for (const t of [...cam.getTracks(), ...stream.getTracks()]) t.stop();
        const bytes = new Uint8Array(await new Blob(chunks).arrayBuffer());
        let bin = '';
        for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
        return { chunks: chunks.length, base64: btoa(bin) };
      },
      { kind, ms: RECORD_MS },
    );

  mkdirSync(outDir, { recursive: true });
  for (const [kind, file] of [
    ['av', 'demo-consultation.webm'],
    ['audio', 'demo-consultation-audio.webm'],
  ]) {
    const { chunks, base64 } = await record(kind);
    const data = Buffer.from(base64, 'base64');
    writeFileSync(path.join(outDir, file), data);
    console.log(`${file}: ${data.length} bytes in ${chunks} chunks`);
  }
} finally {
  await browser.close();
}
