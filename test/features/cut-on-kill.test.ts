import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
// The bench's recording maker: a valid webm of any size, random content (bench/lib/replay-setup.ts).
import { synthesiseWebm } from '../../bench/lib/replay-setup';
import { SignalClose } from '../../src/contracts/signal-close';
import type { ServerSignal } from '../../src/contracts/consultations';
import type { FeatureName } from '../../src/modules/features/features';
import { newStaff, type StaffHandle } from '../fixtures';
import type { TestClient, TestService } from '../harness';
import { liveConsultation, recordClip, startConsultationService, type LiveConsultation } from '../consultations/support';

// A feature switched off stops what it is already serving in this process within the second
// (issue 16): open call sockets (consultation_join) and replays being sent (replay_playback). A
// switch of another feature leaves both alone. Real service, real sockets.

let service: TestService;
let port: number;
let dpo: StaffHandle;
let c: LiveConsultation;
let recordingId: string;

beforeAll(async () => {
  service = await startConsultationService();
  await service.built.app.listen({ port: 0, host: '127.0.0.1' });
  port = (service.built.app.server.address() as AddressInfo).port;
  dpo = await newStaff(service, 'dpo');
  c = await liveConsultation(service);
  // Far more than the loopback socket's buffers hold (a paused reader had about 320 KiB sent), so
  // a replay whose reader has paused is still being sent when the switch goes off.
  recordingId = await recordClip(service, c, Buffer.from(synthesiseWebm(8 * 1024 * 1024).data), 4);
}, 60_000);
afterAll(async () => {
  await service?.close();
});

/** What a test left open (it failed half way): ended so the next test starts with nothing open. */
const leftOpen: (() => void)[] = [];
afterEach(async () => {
  for (const end of leftOpen.splice(0)) end();
  await expect.poll(replaysOpen).toBe(0);
});

/** Switches a feature as the DPO; returns when the switch had committed (its answer came back). */
async function turn(name: FeatureName, enabled: boolean): Promise<number> {
  const res = await dpo.client.put(`/api/features/${name}`, { enabled, reason: `test: ${name} ${enabled ? 'on' : 'off'}` });
  const committed = performance.now();
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  await expect.poll(() => service.deps.features.isEnabledNow(name), { timeout: 1_000, interval: 5 }).toBe(enabled);
  return committed;
}

interface Call {
  ws: WebSocket;
  /** Settles when the server closes the socket, with when that was seen. */
  closed: Promise<{ code: number; at: number }>;
  isClosed(): boolean;
  /** A ping answered by a pong: the socket still serves. */
  answers(): Promise<void>;
}

async function joinCall(client: TestClient): Promise<Call> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/api/consultations/${c.consultationId}/signal`, {
    headers: { origin: `http://127.0.0.1:${port}`, cookie: client.cookie! },
  });
  let closedYet = false;
  const closed = new Promise<{ code: number; at: number }>((resolve) =>
    ws.on('close', (code) => {
      closedYet = true;
      resolve({ code, at: performance.now() });
    }),
  );
  const waiters: ((m: ServerSignal) => void)[] = [];
  ws.on('message', (data) => {
    const m = JSON.parse(String(data)) as ServerSignal;
    for (const w of waiters.splice(0)) w(m);
  });
  ws.on('error', () => undefined);
  leftOpen.push(() => ws.terminate());
  const welcome = new Promise<void>((resolve, reject) => {
    waiters.push((m) => (m.type === 'welcome' ? resolve() : reject(new Error(`expected welcome, got ${m.type}`))));
    ws.on('unexpected-response', (_req, res) => reject(new Error(`refused with ${res.statusCode}`)));
  });
  await welcome;
  return {
    ws,
    closed,
    isClosed: () => closedYet,
    answers: () =>
      new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no pong')), 2_000);
        const wait = (m: ServerSignal) => (m.type === 'pong' ? (clearTimeout(t), resolve()) : waiters.push(wait));
        waiters.push(wait);
        ws.send(JSON.stringify({ type: 'ping' }));
      }),
  };
}

interface Replay {
  /** Bytes the response says it carries. */
  length: number;
  /** Reads on, as fast as it comes: settles when the response ends, whole or cut short. */
  readRest(): Promise<{ complete: boolean; bytes: number }>;
}

/** GETs the whole replay over its own socket and reads nothing yet: the server sends until the socket's buffers are full. */
function startReplay(): Promise<Replay> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: `/api/recordings/${recordingId}/media`, agent: false, headers: { cookie: c.patient.client.cookie!, range: 'bytes=0-' } },
      (res) => {
        if (res.statusCode !== 206) return reject(new Error(`replay answered ${res.statusCode}`));
        res.pause();
        let bytes = 0;
        const ended = new Promise<{ complete: boolean; bytes: number }>((done) => {
          res.on('error', () => undefined);
          res.on('close', () => done({ complete: res.complete, bytes }));
        });
        resolve({
          length: Number(res.headers['content-length']),
          readRest: () => {
            res.on('data', (b: Buffer) => (bytes += b.length));
            res.resume();
            return ended;
          },
        });
      },
    );
    req.on('error', () => undefined);
    leftOpen.push(() => req.destroy());
  });
}

function within<T>(promise: Promise<T>, ms: number, failure: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(failure)), ms)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

async function replaysOpen(): Promise<number> {
  return (await service.deps.metrics.replayStreamsOpen.get()).values[0]?.value ?? 0;
}

/** The newest audit events of an action on an object, details parsed. */
async function audited(action: string, objectId: string) {
  const rows = await service.db.transaction({ kind: 'system', id: null, role: null, sessionId: null, reason: 'test: read audit' }, (tx) =>
    tx.selectFrom('audit_events').selectAll().where('action', '=', action).where('object_id', '=', objectId).orderBy('seq', 'desc').limit(20).execute(),
  );
  return rows.map((r) => ({ ...r, details: (typeof r.details === 'string' ? JSON.parse(r.details) : r.details) as Record<string, unknown> }));
}

async function cutEvents() {
  return (await audited('recording.play_cut_short', recordingId)).filter((e) => e.details.cutBy === 'feature_disabled');
}

describe('switching a feature off cuts what it is serving, within the second', () => {
  it('consultation_join off: every open call socket is closed with "switched off" and audited; a replay being sent carries on', async () => {
    const patientCall = await joinCall(c.patient.client);
    const gpCall = await joinCall(c.gp.client);
    const replay = await startReplay();
    await expect.poll(replaysOpen).toBe(1);

    try {
      const off = await turn('consultation_join', false);
      const closes = await within(Promise.all([patientCall.closed, gpCall.closed]), 1_000, 'the call sockets were not closed within 1 s');
      for (const close of closes) {
        expect(close.code).toBe(SignalClose.featureDisabled);
        expect(close.at - off).toBeLessThan(1_000);
      }
      await expect
        .poll(async () => (await audited('consultation.disconnect', c.consultationId)).filter((e) => e.details.reason === 'feature_disabled').map((e) => e.details), {
          timeout: 5_000,
        })
        .toEqual(
          expect.arrayContaining([
            { as: 'patient', reason: 'feature_disabled', code: SignalClose.featureDisabled },
            { as: 'clinician', reason: 'feature_disabled', code: SignalClose.featureDisabled },
          ]),
        );

      // The replay belongs to a feature still on: it was not touched, and arrives whole.
      expect(await replaysOpen()).toBe(1);
      const got = await replay.readRest();
      expect(got).toEqual({ complete: true, bytes: replay.length });
      expect(await cutEvents()).toEqual([]);
    } finally {
      await turn('consultation_join', true);
    }
  });

  it('replay_playback off: a replay being sent is cut, the viewer sees it end early, and what they got is audited; the call carries on', async () => {
    const call = await joinCall(c.patient.client);
    const replay = await startReplay();
    await expect.poll(replaysOpen).toBe(1);

    try {
      const off = await turn('replay_playback', false);
      await expect.poll(replaysOpen, { timeout: 1_000, interval: 5 }).toBe(0);
      expect(performance.now() - off).toBeLessThan(1_000);

      // The viewer's response ends short of its length (the socket was destroyed mid-body).
      const got = await replay.readRest();
      expect(got.complete).toBe(false);
      expect(got.bytes).toBeLessThan(replay.length);

      // Audited with what was handed over before the cut, and why.
      await expect.poll(async () => (await cutEvents()).length, { timeout: 5_000 }).toBe(1);
      const [cut] = await cutEvents();
      expect(cut).toMatchObject({ actor_id: c.patient.id, patient_id: c.patient.id, object_type: 'recording' });
      const bytes = cut!.details.bytes as number;
      expect(cut!.details).toMatchObject({ cutBy: 'feature_disabled', range: `0-${bytes - 1}` });
      expect(bytes).toBeGreaterThanOrEqual(got.bytes);
      expect(bytes).toBeLessThan(replay.length);

      // The call belongs to a feature still on.
      expect(call.isClosed()).toBe(false);
      await call.answers();
    } finally {
      await turn('replay_playback', true);
    }
    call.ws.close();
    await call.closed;
  });

  it('another feature off (booking) cuts neither; each is cut once its own feature goes off', async () => {
    const call = await joinCall(c.patient.client);
    const replay = await startReplay();
    await expect.poll(replaysOpen).toBe(1);
    const cutsBefore = (await cutEvents()).length;

    try {
      await turn('booking', false);
      // Well past the second in which a cut would have landed.
      await new Promise((r) => setTimeout(r, 1_200));
      expect(call.isClosed()).toBe(false);
      await call.answers();
      expect(await replaysOpen()).toBe(1);
      expect((await cutEvents()).length).toBe(cutsBefore);
    } finally {
      await turn('booking', true);
    }

    // The same call and replay were cuttable all along: their own switches end them.
    try {
      await turn('replay_playback', false);
      await expect.poll(replaysOpen, { timeout: 1_000, interval: 5 }).toBe(0);
      expect((await replay.readRest()).complete).toBe(false);
      await turn('consultation_join', false);
      expect((await within(call.closed, 1_000, 'the call socket was not closed within 1 s')).code).toBe(SignalClose.featureDisabled);
    } finally {
      await turn('replay_playback', true);
      await turn('consultation_join', true);
    }
  });
});
