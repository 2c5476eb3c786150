/**
 * bench:replay setup: a real recording, made through the API the way the web app makes one.
 *
 *   patient registers → GP (operator path, TOTP) signs in → GP opens 24 h availability →
 *   patient books → patient joins → GP starts → GP asks, patient grants audio and video consent →
 *   GP creates the recording → uploads the webm in chunks → finishes → the finaliser seals it →
 *   GET /api/recordings/:id answers 200 (status ready).
 *
 * The webm is synthesised: the header (EBML, Segment, Info, Tracks: VP8 + Opus) of the real
 * MediaRecorder clip src/demo/assets/demo-consultation.webm, then one unknown-size Cluster per
 * second of random-content SimpleBlocks at about 1 Mbit/s (25 video frames of ~4.8 KB, 50 Opus
 * frames of 160 bytes), the way webm.test.ts builds its 50 MB file.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { newTotpSecret, totpCodeAt } from '../../src/modules/identity/totp';
import type { ChildServer } from './child';
import { BenchFailure } from './harness';

const here = path.dirname(fileURLToPath(import.meta.url));
const DEMO_CLIP = path.join(here, '../../src/demo/assets/demo-consultation.webm');
const UA = 'confidant-bench-replay';

export class SetupFailure extends BenchFailure {}

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  json: any;
}

/** A browser-like API caller: keeps its session cookie and CSRF token, as the web app does. */
export class ApiClient {
  cookie: string | undefined;
  csrf: string | undefined;
  constructor(
    readonly host: string,
    readonly port: number,
  ) {}

  request(method: string, urlPath: string, body?: unknown, headers: Record<string, string> = {}, timeoutMs = 60_000): Promise<Answer> {
    const stateChanging = method !== 'GET' && method !== 'HEAD';
    const raw = body === undefined ? (stateChanging ? Buffer.from('{}') : undefined) : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: this.host,
          port: this.port,
          method,
          path: urlPath,
          agent: false,
          headers: {
            'user-agent': UA,
            ...(this.cookie ? { cookie: this.cookie } : {}),
            ...(stateChanging ? { 'x-csrf-token': this.csrf ?? 'none', 'content-type': Buffer.isBuffer(body) ? 'application/octet-stream' : 'application/json' } : {}),
            ...(raw ? { 'content-length': String(raw.length) } : {}),
            ...headers,
          },
        },
        (res) => {
          const parts: Buffer[] = [];
          res.on('data', (c: Buffer) => parts.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const buf = Buffer.concat(parts);
            const setCookie = ([] as string[]).concat(res.headers['set-cookie'] ?? []);
            const session = setCookie.map((c) => /^confidant_session=([^;]*)/.exec(c)?.[1]).find((v) => v !== undefined);
            if (session !== undefined) this.cookie = session ? `confidant_session=${session}` : undefined;
            let json: any;
            if (String(res.headers['content-type'] ?? '').includes('json')) {
              try {
                json = JSON.parse(buf.toString('utf8'));
              } catch {
                json = undefined;
              }
            }
            if (json && typeof json === 'object' && typeof json.csrfToken === 'string') this.csrf = json.csrfToken;
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: buf, json });
          });
        },
      );
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${urlPath}: timeout after ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(raw);
    });
  }

  async expect(status: number | number[], method: string, urlPath: string, body?: unknown, headers?: Record<string, string>): Promise<Answer> {
    const a = await this.request(method, urlPath, body, headers);
    const ok = Array.isArray(status) ? status.includes(a.status) : a.status === status;
    if (!ok) {
      const shown = urlPath.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, ':id');
      throw new SetupFailure(`${method} ${shown}: HTTP ${a.status} (wanted ${String(status)}) ${a.body.toString('utf8').slice(0, 300)}`);
    }
    return a;
  }
}

/** A 1 Mbit/s-ish webm of at least `bytes` bytes (see the file comment). Deterministic in shape, random in content. */
export function synthesiseWebm(bytes: number): { data: Buffer; seconds: number } {
  const clip = readFileSync(DEMO_CLIP);
  const firstCluster = clip.indexOf(Buffer.from('1f43b675', 'hex'));
  if (firstCluster < 0) throw new SetupFailure(`${DEMO_CLIP}: no Cluster found`);
  const head = clip.subarray(0, firstCluster);
  const block = (track: number, rel: number, key: boolean, payload: Buffer) => {
    const b = Buffer.allocUnsafe(7 + payload.length);
    b[0] = 0xa3; // SimpleBlock
    b.writeUInt16BE(0x4000 | (4 + payload.length), 1); // 2-byte EBML size
    b[3] = 0x80 | track;
    b.writeInt16BE(rel, 4);
    b[6] = key ? 0x80 : 0;
    payload.copy(b, 7);
    return b;
  };
  // Random content, so nothing along the way can compress or deduplicate it.
  const pool = randomBytes(1 << 20);
  let at = 0;
  const take = (n: number) => {
    if (at + n > pool.length) at = 0;
    const s = pool.subarray(at, at + n);
    at += n + 13;
    return s;
  };
  const parts: Buffer[] = [head];
  let length = head.length;
  let second = 0;
  while (length < bytes) {
    const timecode = Buffer.from([0xe7, 0x84, 0, 0, 0, 0]);
    timecode.writeUInt32BE(second * 1000, 2);
    const cluster: Buffer[] = [Buffer.from('1f43b67501ffffffffffffff', 'hex'), timecode];
    for (let f = 0; f < 50; f++) {
      if (f % 2 === 0) cluster.push(block(1, f * 20, f === 0, take(4_600 + ((f * 37) % 400))));
      cluster.push(block(2, f * 20, true, take(160)));
    }
    for (const c of cluster) length += c.length;
    parts.push(...cluster);
    second++;
  }
  return { data: Buffer.concat(parts), seconds: second };
}

export interface RecordingFixture {
  recordingId: string;
  patientId: string;
  /** Session cookies of the patient (each a separate signed-in session). */
  cookies: string[];
  plaintext: Buffer;
  plaintextSha256: string;
  uploadedBytes: number;
  durationS: number;
  timings: Record<string, number>;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * Everything above, against the service child. `expected` is what finaliseWebm makes of the
 * synthesised file (computed by the caller): the plaintext served by the route must be exactly it.
 */
export async function createRecording(
  service: ChildServer,
  host: string,
  opts: { webm: Buffer; chunkBytes: number; sessions: number },
): Promise<RecordingFixture> {
  const t: Record<string, number> = {};
  let t0 = performance.now();
  const mark = (k: string) => {
    const now = performance.now();
    t[k] = (now - t0) / 1000;
    t0 = now;
  };
  const run = randomBytes(4).toString('hex');
  const password = `quiet-river-${randomBytes(12).toString('hex')}`;

  // The patient, through the API.
  const patient = new ApiClient(host, service.port);
  const email = `replay.${run}@example.com`;
  await patient.expect(201, 'POST', '/api/auth/register', { givenName: 'Replay', familyName: 'Bench', dateOfBirth: '1980-01-01', email, password });
  const me = await patient.expect(200, 'GET', '/api/session');
  const patientId = me.json?.account?.id as string;
  if (!patientId) throw new SetupFailure('GET /api/session: no account id');

  // The GP: created by the operator path (system scope, TOTP enrolled), then signed in with TOTP.
  const gp = new ApiClient(host, service.port);
  const gpEmail = `replay.gp.${run}@example.com`;
  const secret = newTotpSecret();
  const { id: gpId } = await service.call<{ id: string }>('create-staff', { email: gpEmail, displayName: 'Dr Replay Bench', role: 'clinician', password, mfaSecret: secret });
  const signIn = await gp.expect(200, 'POST', '/api/auth/sign-in', { email: gpEmail, password });
  if (signIn.json?.stage !== 'mfa') throw new SetupFailure(`GP sign-in: stage ${String(signIn.json?.stage)}, expected mfa`);
  await gp.expect(200, 'POST', '/api/auth/mfa/verify', { code: totpCodeAt(secret) });
  await gp.expect(200, 'PUT', `/api/clinicians/${gpId}/availability`, {
    rules: [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, start: '00:00', end: '24:00' })),
  });
  mark('accounts');

  // Book the GP's next free slot, join, start, consent.
  const slots = (await patient.expect(200, 'GET', `/api/slots?clinicianId=${gpId}&limit=20`)).json?.slots as { startsAt: string }[] | undefined;
  let appointmentId: string | undefined;
  for (const slot of slots ?? []) {
    const r = await patient.request('POST', '/api/appointments', { clinicianId: gpId, startsAt: slot.startsAt, mode: 'video', reason: 'Replay benchmark' });
    if (r.status === 201) {
      appointmentId = r.json.id;
      break;
    }
  }
  if (!appointmentId) throw new SetupFailure('no slot could be booked');
  const joined = await patient.expect(200, 'POST', `/api/appointments/${appointmentId}/consultation`);
  const consultationId = joined.json.id as string;
  await gp.expect(200, 'POST', `/api/consultations/${consultationId}/start`);
  // Sound and pictures, before the recording starts: the server keeps the whole upload (it cuts
  // video recorded without the patient's video consent).
  for (const media of ['audio', 'video'] as const) {
    await gp.expect(200, 'POST', `/api/consultations/${consultationId}/consent-requests`, { media });
    await patient.expect(200, 'POST', `/api/consultations/${consultationId}/consents`, { media, decision: 'granted' });
  }
  mark('consultation');

  // The recording: created by the server for the live consultation, uploaded in chunks, finished.
  const rec = await gp.expect(201, 'POST', `/api/consultations/${consultationId}/recordings`);
  const recordingId = rec.json.id as string;
  const { webm, chunkBytes } = opts;
  let seq = 0;
  for (let at = 0; at < webm.length; at += chunkBytes, seq++) {
    await gp.expect(200, 'PUT', `/api/recordings/${recordingId}/chunks/${seq}`, webm.subarray(at, Math.min(webm.length, at + chunkBytes)));
  }
  mark('upload');
  await gp.expect(200, 'POST', `/api/recordings/${recordingId}/finish`);
  const deadline = Date.now() + 120_000;
  let durationS = 0;
  for (;;) {
    const r = await patient.request('GET', `/api/recordings/${recordingId}`);
    if (r.status === 200) {
      durationS = Number(r.json?.durationMs ?? 0) / 1000;
      break;
    }
    if (r.status !== 404) throw new SetupFailure(`GET /api/recordings/:id while finalising: HTTP ${r.status} ${r.body.toString('utf8').slice(0, 300)}`);
    if (Date.now() > deadline) throw new SetupFailure('the recording was not ready after 120 s');
    await new Promise((res) => setTimeout(res, 200));
  }
  mark('finalise');

  // The plaintext, once, through the route itself: what the baselines will serve.
  const whole = await patient.expect(200, 'GET', `/api/recordings/${recordingId}/media`);
  const plaintext = whole.body;
  if (Number(whole.headers['content-length']) !== plaintext.length) throw new SetupFailure('GET media: body length differs from content-length');
  mark('download');

  // More signed-in sessions of the same patient (each its own cookie), for the concurrency run.
  const cookies = [patient.cookie!];
  for (let i = 1; i < opts.sessions; i++) {
    const c = new ApiClient(host, service.port);
    const s = await c.expect(200, 'POST', '/api/auth/sign-in', { email, password });
    if (s.json?.stage !== 'full' || !c.cookie) throw new SetupFailure(`patient sign-in: stage ${String(s.json?.stage)}, expected full`);
    cookies.push(c.cookie!);
  }
  mark('sessions');
  return { recordingId, patientId, cookies, plaintext, plaintextSha256: sha256(plaintext), uploadedBytes: webm.length, durationS, timings: t };
}
