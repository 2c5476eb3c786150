// Generates test/recordings/opaque-canvas-vp8-opus.webm: real, raw (unfinalised) Chromium
// MediaRecorder output recorded the way web/src/call/recorder.ts records a consultation.
//
//   node test/recordings/make-opaque-clip.mjs
//
// Like scripts/make-demo-clip.mjs (Chromium at /usr/bin/chromium or $CHROMIUM, playwright-core,
// fake camera and microphone), except that the canvas is opaque (getContext('2d', { alpha: false }))
// as in recorder.ts, the sound goes through a Web Audio mix, and a keyframe is asked for every 2 s.
// Chrome then still marks the VP8 track AlphaMode=1 although no frame carries alpha (no
// BlockAdditions): the file WebKit refuses to play until the finaliser clears the flag (issue 14).
// 320x240 at 150 kbit/s for ~4 s in 1 s chunks keeps the file small.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const out = path.join(import.meta.dirname, 'opaque-canvas-vp8-opus.webm');
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
  // getUserMedia needs a secure context; http://localhost is one, answered by Playwright itself.
  await page.route('http://localhost/', (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>clip</title>' }));
  await page.goto('http://localhost/');

  const { chunks, base64 } = await page.evaluate(async (ms) => {
    const cam = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 240 } });
    const video = document.createElement('video');
    video.muted = true;
    video.playsInline = true;
    video.srcObject = cam;
    await video.play();
    const canvas = document.createElement('canvas');
    canvas.width = 320;
    canvas.height = 240;
    const ctx = canvas.getContext('2d', { alpha: false });
    const draw = () => ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
    draw();
    const timer = setInterval(draw, Math.round(1000 / 15));

    const audio = new AudioContext();
    await audio.resume();
    const mix = audio.createMediaStreamDestination();
    audio.createMediaStreamSource(cam).connect(mix);

    const stream = new MediaStream([...canvas.captureStream(15).getVideoTracks(), ...mix.stream.getAudioTracks()]);
    const mimeType = 'video/webm;codecs=vp8,opus';
    if (!MediaRecorder.isTypeSupported(mimeType)) throw new Error(`${mimeType} is not supported`);
    const recorder = new MediaRecorder(stream, {
      mimeType,
      videoBitsPerSecond: 150_000,
      audioBitsPerSecond: 32_000,
      videoKeyFrameIntervalDuration: 2_000,
    });
    const parts = [];
    recorder.ondataavailable = (e) => {
      if (e.data.size > 0) parts.push(e.data);
    };
    const stopped = new Promise((resolve, reject) => {
      recorder.onstop = resolve;
      recorder.onerror = (e) => reject(e.error ?? new Error('MediaRecorder error'));
    });
    recorder.start(1000);
    await new Promise((r) => setTimeout(r, ms));
    recorder.stop();
    await stopped;
    clearInterval(timer);
    for (const t of [...cam.getTracks(), ...stream.getTracks()]) t.stop();
    await audio.close();
    const bytes = new Uint8Array(await new Blob(parts).arrayBuffer());
    let bin = '';
    for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return { chunks: parts.length, base64: btoa(bin) };
  }, RECORD_MS);

  const data = Buffer.from(base64, 'base64');
  writeFileSync(out, data);
  console.log(`${path.basename(out)}: ${data.length} bytes in ${chunks} chunks`);
} finally {
  await browser.close();
}
