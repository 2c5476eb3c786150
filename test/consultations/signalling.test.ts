import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { ServerSignal } from '../../src/contracts/consultations';
import type { TestClient, TestService } from '../harness';
import { dataCounts, latestAuditEvents, newPatient, newStaff } from '../fixtures';
import { liveConsultation, newGp, startConsultationService, type LiveConsultation } from './support';

/**
 * The signalling WebSocket: only the consultation's two parties connect, a message goes only to
 * the other party of the same consultation, and the session is checked on every message.
 */
let service: TestService;
let base: string;
let c: LiveConsultation;

beforeAll(async () => {
  service = await startConsultationService();
  const address = await service.built.app.listen({ port: 0, host: '127.0.0.1' });
  base = address.replace('http', 'ws');
  c = await liveConsultation(service);
});
afterAll(async () => {
  await service?.close();
});

/** What the audit trail recorded for each socket of a consultation that was dropped (it is written just after the close). */
async function disconnectReasons(on: TestService, consultationId: string, count = 1) {
  let found: unknown[] = [];
  for (let i = 0; i < 50; i++) {
    const events = await latestAuditEvents(on, 200);
    found = events
      .filter((e) => e.action === 'consultation.disconnect' && e.object_id === consultationId)
      .map((e) => (typeof e.details === 'string' ? JSON.parse(e.details) : e.details));
    if (found.length >= count) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return found;
}

interface Conn {
  ws: WebSocket;
  messages: ServerSignal[];
  next(type: ServerSignal['type'], ms?: number): Promise<ServerSignal>;
  closed: Promise<{ code: number; reason: string }>;
}

interface OpenOptions {
  /** Another service's address than the file's own. */
  base?: string;
  /** Answer the server's WebSocket pings (as browsers do, and `ws` by default). */
  autoPong?: boolean;
}

function open(
  client: TestClient | null,
  consultationId: string,
  headers: Record<string, string> = {},
  { base: at = base, autoPong = true }: OpenOptions = {},
): Promise<Conn | { refused: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${at}/api/consultations/${consultationId}/signal`, {
      headers: { origin: at.replace('ws', 'http'), ...(client?.cookie ? { cookie: client.cookie } : {}), ...headers },
      autoPong,
    });
    const messages: ServerSignal[] = [];
    const waiters: { type: string; resolve: (m: ServerSignal) => void }[] = [];
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as ServerSignal;
      messages.push(m);
      const i = waiters.findIndex((w) => w.type === m.type);
      if (i >= 0) waiters.splice(i, 1)[0]!.resolve(m);
    });
    const closed = new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => r({ code, reason: String(reason) })));
    ws.on('unexpected-response', (_req, res) => resolve({ refused: res.statusCode ?? 0 }));
    ws.on('error', () => undefined);
    ws.on('open', () =>
      resolve({
        ws,
        messages,
        closed,
        next: (type, ms = 3000) => {
          const seen = messages.findIndex((m) => m.type === type);
          if (seen >= 0) return Promise.resolve(messages.splice(seen, 1)[0]!);
          return new Promise((res, rej) => {
            const t = setTimeout(() => rej(new Error(`no ${type} message within ${ms} ms`)), ms);
            waiters.push({ type, resolve: (m) => (clearTimeout(t), messages.splice(messages.indexOf(m), 1), res(m)) });
          });
        },
      }),
    );
  });
}

async function connect(client: TestClient, consultationId: string, opts: OpenOptions = {}): Promise<Conn> {
  const conn = await open(client, consultationId, {}, opts);
  if ('refused' in conn) throw new Error(`refused with ${conn.refused}`);
  return conn;
}

describe('signalling', () => {
  it('relays offers, answers and ICE candidates between the two parties only', async () => {
    const gp = await connect(c.gp.client, c.consultationId);
    expect(await gp.next('welcome')).toMatchObject({ you: 'clinician', presence: { clinician: true, patient: false } });
    const patient = await connect(c.patient.client, c.consultationId);
    expect(await patient.next('welcome')).toMatchObject({ you: 'patient', presence: { clinician: true, patient: true } });
    expect(await gp.next('presence')).toMatchObject({ presence: { patient: true, clinician: true } });

    // A second live consultation of another patient and GP, connected at the same time.
    const other = await liveConsultation(service);
    const otherGp = await connect(other.gp.client, other.consultationId);
    const otherPatient = await connect(other.patient.client, other.consultationId);

    gp.ws.send(JSON.stringify({ type: 'signal', data: { kind: 'offer', sdp: 'v=0 offer-from-gp' } }));
    expect(await patient.next('signal')).toEqual({ type: 'signal', from: 'clinician', data: { kind: 'offer', sdp: 'v=0 offer-from-gp' } });
    patient.ws.send(JSON.stringify({ type: 'signal', data: { kind: 'answer', sdp: 'v=0 answer-from-patient' } }));
    expect(await gp.next('signal')).toMatchObject({ from: 'patient', data: { kind: 'answer' } });
    patient.ws.send(JSON.stringify({ type: 'signal', data: { kind: 'ice', candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 5000 typ host', sdpMid: '0' } } }));
    expect(await gp.next('signal')).toMatchObject({ data: { kind: 'ice' } });
    patient.ws.send(JSON.stringify({ type: 'media', audio: false, video: false }));
    expect(await gp.next('media')).toEqual({ type: 'media', from: 'patient', audio: false, video: false });

    // Nothing crossed to the other consultation, and nothing echoed back to the sender.
    await new Promise((r) => setTimeout(r, 100));
    expect(otherGp.messages.filter((m) => m.type === 'signal' || m.type === 'media')).toEqual([]);
    expect(otherPatient.messages.filter((m) => m.type === 'signal' || m.type === 'media')).toEqual([]);
    expect(gp.messages.filter((m) => m.type === 'signal' && m.from === 'clinician')).toEqual([]);

    // A state change reaches both sides as "changed".
    await c.gp.client.post(`/api/consultations/${c.consultationId}/mode-requests`, { mode: 'video' });
    await patient.next('changed');
    await gp.next('changed');
    for (const conn of [gp, patient, otherGp, otherPatient]) conn.ws.close();
  });

  it('refuses a new call connection while consultation join is switched off, and admits it again once it is back on', async () => {
    const own = await liveConsultation(service);
    const dpo = await newStaff(service, 'dpo');
    const turn = async (enabled: boolean) => {
      const res = await dpo.client.put('/api/features/consultation_join', { enabled, reason: enabled ? 'test: back on' : 'test: kill switch' });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      // This process follows the change through its own notification, within the second.
      await expect.poll(() => service.deps.features.isEnabledNow('consultation_join'), { timeout: 1_000, interval: 20 }).toBe(enabled);
    };
    await turn(false);
    try {
      expect(await open(own.patient.client, own.consultationId)).toEqual({ refused: 503 });
    } finally {
      await turn(true);
    }
    const back = await connect(own.patient.client, own.consultationId);
    await back.next('welcome');
    back.ws.close();
  });

  it('refuses strangers before the upgrade, with the same answers as the HTTP routes, writing only the denial', async () => {
    const cases: [string, TestClient | null, number][] = [
      ['another patient', (await newPatient(service)).client, 404],
      ['another clinician', (await newGp(service)).client, 404],
      ['the DPO', (await newStaff(service, 'dpo')).client, 404],
      ['anonymous', null, 401],
    ];
    for (const [who, client, status] of cases) {
      const before = await dataCounts(service);
      const res = await open(client, c.consultationId);
      expect(res, who).toEqual({ refused: status });
      const after = await dataCounts(service);
      expect({ ...after, audit_events: 0 }).toEqual({ ...before, audit_events: 0 });
      expect(after.audit_events - before.audit_events, who).toBe(1);
      const [event] = await latestAuditEvents(service, 1);
      expect(event).toMatchObject({ action: 'consultation.signal', outcome: 'denied' });
    }
    // A forged consultation id: the same 404.
    expect(await open(c.patient.client, randomUUID())).toEqual({ refused: 404 });
    // A page on another site cannot open the socket with the patient's cookie.
    expect(await open(c.patient.client, c.consultationId, { origin: 'https://evil.example' })).toEqual({ refused: 403 });
  });

  it('closes a socket whose session has been signed out, and refuses malformed messages', async () => {
    const patient = await newPatient(service);
    const own = await liveConsultation(service, { patient });
    const conn = await connect(patient.client, own.consultationId);
    await conn.next('welcome');
    conn.ws.send(JSON.stringify({ type: 'ping' }));
    await conn.next('pong');
    await patient.client.post('/api/auth/sign-out');
    conn.ws.send(JSON.stringify({ type: 'ping' }));
    expect((await conn.closed).code).toBe(4401);

    const gp = await connect(own.gp.client, own.consultationId);
    await gp.next('welcome');
    gp.ws.send(JSON.stringify({ type: 'signal', data: { kind: 'offer', sdp: 'x', to: 'someone-else' } }));
    expect((await gp.closed).code).toBe(4400);
    // The audit trail says why each socket was dropped.
    expect(await disconnectReasons(service, own.consultationId, 2)).toEqual(expect.arrayContaining([
      { as: 'patient', reason: 'session_ended', code: 4401 },
      { as: 'clinician', reason: 'bad_message', code: 4400 },
    ]));
  });

  it('closes both sides when the consultation ends, and refuses to reconnect', async () => {
    const own = await liveConsultation(service);
    const patient = await connect(own.patient.client, own.consultationId);
    await own.gp.client.post(`/api/consultations/${own.consultationId}/end`);
    expect((await patient.closed).code).toBe(4409);
    expect(await open(own.patient.client, own.consultationId)).toEqual({ refused: 409 });
    expect(await disconnectReasons(service, own.consultationId)).toEqual([{ as: 'patient', reason: 'consultation_ended', code: 4409 }]);
  });

  it('records a socket the client closes itself as closed by the client', async () => {
    const own = await liveConsultation(service);
    const patient = await connect(own.patient.client, own.consultationId);
    await patient.next('welcome');
    patient.ws.close(1000);
    await patient.closed;
    expect(await disconnectReasons(service, own.consultationId)).toEqual([{ as: 'patient', reason: 'client_closed', code: 1000 }]);
  });
});

describe('signalling liveness', () => {
  // A service of its own whose pages ping every second (SIGNAL_PING_SECONDS), so silence shows in seconds.
  let quick: TestService;
  let quickBase: string;
  beforeAll(async () => {
    quick = await startConsultationService({ SIGNAL_PING_SECONDS: '1' });
    quickBase = (await quick.built.app.listen({ port: 0, host: '127.0.0.1' })).replace('http', 'ws');
  });
  afterAll(async () => {
    await quick?.close();
  });

  it('closes a socket it hears nothing from (a half-open connection) and tells the other party; one that answers pings stays', async () => {
    const own = await liveConsultation(quick);
    // The GP's page sends nothing of its own, but answers the server's WebSocket pings, as a browser does.
    const gp = await connect(own.gp.client, own.consultationId, { base: quickBase });
    // The page learns its ping interval from the welcome.
    expect(await gp.next('welcome')).toMatchObject({ you: 'clinician', pingMs: 1000 });
    // The patient's connection goes dead without closing: nothing arrives from it, not even a pong.
    const patient = await connect(own.patient.client, own.consultationId, { base: quickBase, autoPong: false });
    const openedAt = Date.now();
    await patient.next('welcome');
    expect(await gp.next('presence')).toMatchObject({ presence: { patient: true, clinician: true } });

    const closed = await Promise.race([patient.closed, new Promise<null>((r) => setTimeout(() => r(null), 8_000))]);
    const after = Date.now() - openedAt;
    expect(closed, 'the silent socket is closed').not.toBeNull();
    // 2.5 intervals of silence, checked every half interval (and some slack for a busy machine).
    expect(after).toBeGreaterThanOrEqual(2_000);
    expect(after).toBeLessThan(6_000);
    // Terminated: a close handshake would wait for an answer that is not coming.
    expect(closed!.code).toBe(1006);
    // The GP's page is told she has gone, and the hub agrees.
    expect(await gp.next('presence')).toMatchObject({ presence: { patient: false, clinician: true } });
    expect(quick.deps.consultations.hub.presence(own.consultationId)).toEqual({ patient: false, clinician: true });
    expect(await disconnectReasons(quick, own.consultationId)).toEqual([{ as: 'patient', reason: 'silent', code: 1006 }]);

    // The GP's socket, quiet for longer than that but answering pings, is still open and working.
    expect(gp.ws.readyState).toBe(WebSocket.OPEN);
    gp.ws.send(JSON.stringify({ type: 'ping' }));
    await gp.next('pong');
    gp.ws.close();
  });
});
