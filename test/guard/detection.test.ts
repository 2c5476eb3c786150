import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { Principal } from '../../src/access/principal';
import { noRequest } from '../../src/access/request-context';
import { openDatabase, sql, type Database } from '../../src/db';
import { buildApp } from '../../src/http/app';
import { defineRoute } from '../../src/http/define-route';
import { allRoutes } from '../../src/http/routes';
import { createLogger } from '../../src/logger';
import { createService, type Service } from '../../src/server';
import { book, newGp } from '../consultations/support';
import {
  dataCounts,
  detectNow,
  latestAuditEvents,
  newPatient,
  newStaff,
  restoreKilledFeatures,
  type PatientHandle,
  type StaffHandle,
} from '../fixtures';
import { onPostgres, startTestService, testConfig, type TestService } from '../harness';
import { OWNER_ROLE, SERVICE_ROLE, urlFor } from '../pg-admin';

/** A route with the 2020 bug: it hands out one fixed patient's object, whoever asks. */
let victimId = '';
const leaky = defineRoute({
  method: 'GET',
  url: '/api/test/leaky-replay',
  summary: 'test: a replay list that lost its scope',
  tags: ['test'],
  access: { permission: 'recording.read' },
  feature: 'replay_list',
  response: z.object({ patientId: z.string(), title: z.string() }),
  egress: (out) => [out.patientId],
  handler: async () => ({ patientId: victimId, title: 'someone else’s replay' }),
});

/** A route with a write bug: it queues mail to a fixed patient it has nothing to do with. */
const misaddressed = defineRoute({
  method: 'POST',
  url: '/api/test/misaddressed',
  summary: 'test: a write that reaches past the caller',
  tags: ['test'],
  access: { permission: 'appointment.read' },
  feature: 'notifications',
  response: z.object({ ok: z.literal(true) }),
  egress: 'none',
  handler: async ({ scope }) => {
    await scope.tx.insertInto('outbox').values({ recipient_id: victimId, channel: 'email', template: 'appointment_booked' }).execute();
    return { ok: true as const };
  },
});

const quiet = () =>
  createLogger(
    'silent',
    new Writable({
      write(_c, _e, cb) {
        cb();
      },
    }),
  );

type AlertRow = { id: string; rule: string; severity: string; feature: string | null; action: string; event_seqs: (number | string)[]; event_count: number; incident_id: string | null; actor_id: string | null };

async function alertsSince(service: Pick<Service, 'db'>, since: Date): Promise<AlertRow[]> {
  return service.db.transaction({ kind: 'system', id: null, role: null, sessionId: null, reason: 'test: read alerts' }, (tx) =>
    tx.selectFrom('guard_alerts').selectAll().where('raised_at', '>=', since).orderBy('raised_at').execute(),
  ) as Promise<AlertRow[]>;
}

async function requestAuditSeq(service: Pick<Service, 'db'>, requestId: string): Promise<{ seq: number; occurred_at: Date }> {
  const row = await service.db.transaction({ kind: 'system', id: null, role: null, sessionId: null, reason: 'test: find event' }, (tx) =>
    tx.selectFrom('audit_events').select(['seq', 'occurred_at']).where('request_id', '=', requestId).where('action', '=', 'egress.blocked').executeTakeFirstOrThrow(),
  );
  return row;
}

let service: TestService;
let app: Awaited<ReturnType<typeof buildApp>>['app'];
let victim: PatientHandle;
let dpo: StaffHandle;
let admin: StaffHandle;

beforeAll(async () => {
  service = await startTestService({ config: testConfig({ GUARD_PROBE_THRESHOLD: '3', GUARD_VOLUME_PATIENTS_PER_HOUR: '2' }) });
  victim = await newPatient(service);
  victimId = victim.id;
  dpo = await newStaff(service, 'dpo');
  admin = await newStaff(service, 'admin');
  app = (await buildApp(service.deps, { routes: [...allRoutes, leaky, misaddressed] })).app;
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  await service?.close();
});
afterEach(async () => {
  await restoreKilledFeatures(service);
});

async function leak(who: PatientHandle) {
  return app.inject({ method: 'GET', url: '/api/test/leaky-replay', headers: { cookie: who.client.cookie! } });
}

describe('containment: a layer stopped a cross-patient response', () => {
  it('switches the implicated feature off within a second of the event, opens an alert and an incident, emails the DPOs, and audits all of it', async () => {
    const since = new Date(Date.now() - 1);
    const intruder = await newPatient(service);
    const res = await leak(intruder);
    expect(res.statusCode).toBe(500);
    expect(res.body).not.toContain(victim.id);
    const event = await requestAuditSeq(service, String(res.headers['x-request-id']));
    await expect.poll(() => service.deps.features.isEnabledNow('replay_list'), { timeout: 1_000, interval: 5 }).toBe(false);
    // Measured against the violating event's own timestamp (its insert, just before its commit).
    expect(Date.now() - event.occurred_at.getTime()).toBeLessThan(1_000);

    const [alert, ...more] = await alertsSince(service, since);
    expect(more).toEqual([]);
    expect(alert).toMatchObject({ rule: 'containment', severity: 'critical', feature: 'replay_list', action: 'feature_disabled', event_count: 1 });
    expect(alert!.event_seqs.map(Number)).toEqual([event.seq]);
    // The route now answers feature_disabled to everyone, the victim included.
    expect((await victim.client.get('/api/replays')).body.error.code).toBe('feature_disabled');

    const records = await service.db.transaction({ kind: 'system', id: null, role: null, sessionId: null, reason: 'test' }, async (tx) => ({
      incident: await tx.selectFrom('incidents').selectAll().where('id', '=', alert!.incident_id!).executeTakeFirst(),
      outbox: await tx.selectFrom('outbox').selectAll().where('alert_id', '=', alert!.id).execute(),
      feature: await tx.selectFrom('features').selectAll().where('name', '=', 'replay_list').executeTakeFirstOrThrow(),
      dpos: await tx.selectFrom('accounts').select('id').where('staff_role', '=', 'dpo').where('disabled_at', 'is', null).execute(),
    }));
    expect(records.incident).toMatchObject({ status: 'open', rule: 'containment', severity: 'critical', feature: 'replay_list', event_count: 1 });
    expect(records.incident!.event_seqs.map(Number)).toEqual([event.seq]);
    // One email per DPO, naming the alert only: the sender renders it without clinical detail.
    expect(records.outbox.map((o) => o.recipient_id).sort()).toEqual(records.dpos.map((d) => d.id).sort());
    expect(records.outbox.every((o) => o.template === 'guard_alert' && o.appointment_id === null)).toBe(true);
    expect(records.feature).toMatchObject({ enabled: false, disabled_by_kind: 'automatic', changed_by: null });
    expect(records.feature.reason).toContain(`audit event ${event.seq}`);

    const actions = (await latestAuditEvents(service, 20)).filter((e) => e.seq > event.seq).map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['feature.disable', 'incident.open', 'guard.alert']));
    const raisedBy = (await latestAuditEvents(service, 20)).find((e) => e.action === 'guard.alert')!;
    expect(raisedBy).toMatchObject({ actor_kind: 'system', object_id: alert!.id, outcome: 'success' });
    expect(raisedBy.system_reason).toContain('breach guard');
    expect(service.logs.some((l) => l.includes('"alert":"breach_guard"'))).toBe(true);
  });

  it('treats a write refused by row-level security the same way: 404 to the caller, nothing written, the feature off, an alert', async () => {
    const since = new Date(Date.now() - 1);
    const intruder = await newPatient(service);
    const before = await dataCounts(service);
    const res = await app.inject({ method: 'POST', url: '/api/test/misaddressed', headers: { cookie: intruder.client.cookie!, 'x-csrf-token': intruder.client.csrf!, 'content-type': 'application/json' }, payload: '{}' });
    expect(res.statusCode, res.body).toBe(404);
    expect(res.json().error.code).toBe('not_found');
    await expect.poll(() => service.deps.features.isEnabledNow('notifications'), { timeout: 1_000, interval: 5 }).toBe(false);
    const after = await dataCounts(service);
    // Nothing of the route's write: the only new mail is the alert's, one to each DPO.
    const dpos = await service.db.transaction({ kind: 'system', id: null, role: null, sessionId: null, reason: 'test' }, (tx) =>
      tx.selectFrom('accounts').select('id').where('staff_role', '=', 'dpo').where('disabled_at', 'is', null).execute(),
    );
    expect(after.outbox - before.outbox).toBe(dpos.length);
    expect({ ...after, outbox: 0, audit_events: 0 }).toEqual({ ...before, outbox: 0, audit_events: 0 });
    const event = (await latestAuditEvents(service, 20)).find((e) => e.request_id === res.headers['x-request-id']);
    expect(event).toMatchObject({ action: 'rls.violation', outcome: 'failure', actor_id: intruder.id });
    expect(JSON.parse(event!.details!)).toMatchObject({ route: '/api/test/misaddressed', feature: 'notifications', sqlstate: '42501' });
    const [alert] = await alertsSince(service, since);
    expect(alert).toMatchObject({ rule: 'containment', severity: 'critical', feature: 'notifications', action: 'feature_disabled' });
  });

  it('gathers a burst into one alert and one incident, and switches the feature off once', async () => {
    const since = new Date(Date.now() - 1);
    const intruder = await newPatient(service);
    const answers = await Promise.all(Array.from({ length: 12 }, () => leak(intruder)));
    // The first ones are blocked by the egress check; once the kill lands, the rest by the switch.
    expect(answers.every((a) => a.statusCode === 500 || a.json().error.code === 'feature_disabled')).toBe(true);
    const blocked = answers.filter((a) => a.statusCode === 500).length;
    await detectNow(service);
    const alerts = await alertsSince(service, since);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.event_count).toBe(blocked);
    const kills = (await latestAuditEvents(service, 200)).filter((e) => e.action === 'feature.disable' && e.occurred_at >= since);
    expect(kills).toHaveLength(1);
  });

  it('after an automatic kill only the DPO switches the feature back on, with a reason (admin: 403 dpo_required)', async () => {
    const intruder = await newPatient(service);
    await leak(intruder);
    await detectNow(service);
    await expect.poll(() => service.deps.features.isEnabledNow('replay_list'), { timeout: 1_000, interval: 5 }).toBe(false);
    const byAdmin = await admin.client.put('/api/features/replay_list', { enabled: true, reason: 'looks fine to me' });
    expect(byAdmin.status).toBe(403);
    expect(byAdmin.body.error.code).toBe('dpo_required');
    const byDpo = await dpo.client.put('/api/features/replay_list', { enabled: true, reason: 'Fault found and fixed; see incident' });
    expect(byDpo.status).toBe(200);
    await expect.poll(() => service.deps.features.isEnabledNow('replay_list'), { timeout: 1_000, interval: 5 }).toBe(true);
  });

  it('raises nothing for ordinary refusals (a wrong id, a missing permission)', async () => {
    const since = new Date(Date.now() - 1);
    const patient = await newPatient(service);
    expect((await patient.client.get(`/api/appointments/${randomUUID()}`)).status).toBe(404);
    expect((await patient.client.get('/api/audit/events/search')).status).toBe(404);
    await detectNow(service);
    expect(await alertsSince(service, since)).toEqual([]);
    expect(service.deps.features.isEnabledNow('appointments')).toBe(true);
  });
});

describe('integrity', () => {
  it('a verification run that finds the chain broken is critical: an alert and an incident, nothing switched off (no one feature to blame)', async () => {
    const since = new Date(Date.now() - 1);
    await service.deps.scopes.system('operator: audit verify', noRequest('cli'), async (scope) =>
      scope.audit({ action: 'audit.verify', objectType: 'audit_log', outcome: 'failure', details: { checked: 10 } }),
    );
    await detectNow(service);
    const [alert] = await alertsSince(service, since);
    expect(alert).toMatchObject({ rule: 'integrity', severity: 'critical', feature: null, action: 'none' });
    expect(alert!.incident_id).not.toBeNull();
  });
});

describe('probing', () => {
  it('throttles a principal who gets not-found answers on ids that exist but are not theirs, and alerts the DPO', async () => {
    const since = new Date(Date.now() - 1);
    const gp = await newGp(service);
    const owners = await Promise.all([newPatient(service), newPatient(service), newPatient(service)]);
    const ids: string[] = [];
    for (const o of owners) ids.push(await book(service, o, gp));
    const prober = await newPatient(service);
    const bystander = await newPatient(service);
    // The bystander mistypes ids that exist nowhere: never counted.
    for (let i = 0; i < 4; i++) expect((await bystander.client.get(`/api/appointments/${randomUUID()}`)).status).toBe(404);
    for (const id of ids) expect((await prober.client.get(`/api/appointments/${id}`)).status).toBe(404);
    await detectNow(service);

    const alerts = await alertsSince(service, since);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ rule: 'probing', severity: 'high', action: 'throttled', actor_id: prober.id, event_count: 3, feature: null });
    await expect.poll(() => service.deps.guard.isThrottled(prober.id), { timeout: 1_000, interval: 5 }).toBe(true);
    const refused = await prober.client.get('/api/profile');
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe('throttled');
    expect(refused.headers['retry-after']).toBeDefined();
    // Nor may it open a call socket.
    if (!service.built.app.server.listening) await service.built.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = service.built.app.server.address() as AddressInfo;
    const upgrade = await new Promise<number>((resolve, reject) => {
      const req = http.get({
        host: '127.0.0.1',
        port,
        path: `/api/consultations/${randomUUID()}/signal`,
        headers: { cookie: prober.client.cookie!, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' },
      });
      req.on('response', (r) => resolve(r.statusCode!));
      req.on('upgrade', () => reject(new Error('upgraded')));
      req.on('error', reject);
    });
    expect(upgrade).toBe(429);
    // Mirror: the bystander and the owners are served; nothing switched off.
    expect((await bystander.client.get('/api/profile')).status).toBe(200);
    expect((await owners[0]!.client.get(`/api/appointments/${ids[0]}`)).status).toBe(200);
    expect(service.deps.features.isEnabledNow('appointments')).toBe(true);
    const throttle = (await latestAuditEvents(service, 50)).find((e) => e.action === 'guard.throttle');
    expect(throttle).toMatchObject({ object_id: prober.id, actor_kind: 'system' });
  });
});

describe('unusual volume', () => {
  it('alerts (medium, nothing switched off) when one staff principal touches more distinct patients in an hour than the threshold', async () => {
    const since = new Date(Date.now() - 1);
    const clinician = await newStaff(service, 'clinician');
    const patients = await Promise.all([newPatient(service), newPatient(service), newPatient(service)]);
    const as: Principal = { kind: 'clinician', accountId: clinician.id, sessionId: randomUUID() };
    const touch = (patientId: string) =>
      service.deps.scopes.run(as, noRequest('test'), async (scope) => scope.audit({ action: 'notes.read', objectType: 'consultation', objectId: randomUUID(), patientId }));
    // Two patients: at the threshold, no alert.
    await touch(patients[0]!.id);
    await touch(patients[1]!.id);
    await detectNow(service);
    expect(await alertsSince(service, since)).toEqual([]);
    // The volume rule counts each principal at most every 10 s; a third patient after that alerts.
    await new Promise((r) => setTimeout(r, 10_100));
    await touch(patients[2]!.id);
    await detectNow(service);
    const alerts = await alertsSince(service, since);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ rule: 'volume', severity: 'medium', action: 'none', actor_id: clinician.id, incident_id: null });
  }, 20_000);
});

describe("the DPO's alerts", () => {
  let alertId: string;
  beforeAll(async () => {
    const since = new Date(Date.now() - 1);
    await leak(await newPatient(service));
    await detectNow(service);
    alertId = (await alertsSince(service, since))[0]!.id;
  });

  it('lists them (unacknowledged first) and acknowledges one by its id, in any case; acknowledging twice is the same answer', async () => {
    const list = await dpo.client.get('/api/guard/alerts');
    expect(list.status).toBe(200);
    expect(list.body.alerts[0]).toMatchObject({ id: alertId, rule: 'containment', severity: 'critical', feature: 'replay_list', action: 'feature_disabled', acknowledgedAt: null });
    expect(list.body.alerts[0].summary).toMatch(/switched off automatically/);
    const ack = await dpo.client.post(`/api/guard/alerts/${alertId.toUpperCase()}/acknowledge`);
    expect(ack.status).toBe(200);
    expect(ack.body).toMatchObject({ id: alertId, acknowledgedBy: expect.stringContaining('dpo') });
    expect(ack.body.acknowledgedAt).not.toBeNull();
    const again = await dpo.client.post(`/api/guard/alerts/${alertId}/acknowledge`);
    expect(again.body.acknowledgedAt).toBe(ack.body.acknowledgedAt);
    // Acknowledging switches nothing back on.
    expect(service.deps.features.isEnabledNow('replay_list')).toBe(false);
  });

  it('refuses everyone else with 404 and writes only the denial', async () => {
    const patient = await newPatient(service);
    for (const who of [admin.client, patient.client]) {
      const before = await dataCounts(service);
      const res = await who.post(`/api/guard/alerts/${alertId}/acknowledge`);
      expect(res.status).toBe(404);
      expect((await who.get('/api/guard/alerts')).status).toBe(404);
      const after = await dataCounts(service);
      expect({ ...after, audit_events: 0 }).toEqual({ ...before, audit_events: 0 });
      expect(after.audit_events - before.audit_events).toBe(2);
    }
    const unknown = await dpo.client.post(`/api/guard/alerts/${randomUUID()}/acknowledge`);
    expect(unknown.status).toBe(404);
  });

  it('pushes a new alert to an open stream the moment it is raised', async () => {
    if (!service.built.app.server.listening) await service.built.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = service.built.app.server.address() as AddressInfo;
    const received: string[] = [];
    const open = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/api/guard/alerts/stream', headers: { cookie: dpo.client.cookie! } }, resolve).on('error', reject);
    });
    expect(open.statusCode).toBe(200);
    expect(open.headers['content-type']).toContain('text/event-stream');
    open.on('data', (b: Buffer) => received.push(String(b)));
    await expect.poll(() => received.join(''), { timeout: 1_000 }).toContain(': open');
    // A violation through the listening app (the stream is on the service's own app).
    const intruder = await newPatient(service);
    await restoreKilledFeatures(service);
    const started = Date.now();
    await leak(intruder);
    await expect.poll(() => received.join(''), { timeout: 1_000, interval: 5 }).toContain('event: alert');
    expect(Date.now() - started).toBeLessThan(1_000);
    const data = received.join('').split('\n').find((l) => l.startsWith('data: '))!;
    const alert = JSON.parse(data.slice('data: '.length));
    expect(alert).toMatchObject({ rule: 'containment', feature: 'replay_list', severity: 'critical' });
    expect(data).not.toContain(victim.id);
    open.destroy();
    // Mirror: a patient's stream is refused.
    const patient = await newPatient(service);
    const refused = await patient.client.get('/api/guard/alerts/stream');
    expect(refused.status).toBe(404);
  });
});

describe('shutting down', () => {
  it('ends the open alert streams, so an open DPO page does not hold the server open', async () => {
    const other = await startTestService();
    const theDpo = await newStaff(other, 'dpo');
    await other.built.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = other.built.app.server.address() as AddressInfo;
    const open = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/api/guard/alerts/stream', headers: { cookie: theDpo.client.cookie! } }, resolve).on('error', reject);
    });
    expect(open.statusCode).toBe(200);
    const ended = new Promise<void>((resolve) => {
      open.on('end', () => resolve());
      open.on('close', () => resolve());
      open.resume();
    });
    const started = performance.now();
    await other.close();
    await ended;
    // Without the stream being ended, close() waits for it (two minutes, its lifetime).
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});

describe('paging webhook', () => {
  it('POSTs each alert (identifiers and codes only) to the configured URL, and audits the delivery', async () => {
    const posts: { body: string; type: string | undefined }[] = [];
    const hook = http.createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (b: Buffer) => parts.push(b));
      req.on('end', () => {
        posts.push({ body: Buffer.concat(parts).toString(), type: req.headers['content-type'] });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/page`;
    const paged = await startTestService({ config: testConfig({ GUARD_WEBHOOK_URL: url }) });
    try {
      const who = await newPatient(paged);
      const victimHere = await newPatient(paged);
      const leakyHere = defineRoute({ ...leaky, url: '/api/test/leaky-here', handler: async () => ({ patientId: victimHere.id, title: 'x' }) });
      const appHere = (await buildApp(paged.deps, { routes: [...allRoutes, leakyHere] })).app;
      await appHere.ready();
      await appHere.inject({ method: 'GET', url: '/api/test/leaky-here', headers: { cookie: who.client.cookie! } });
      await expect.poll(() => posts.length, { timeout: 2_000 }).toBe(1);
      const body = JSON.parse(posts[0]!.body);
      expect(posts[0]!.type).toBe('application/json');
      expect(body).toMatchObject({ service: 'confidant', alert: { rule: 'containment', severity: 'critical', feature: 'replay_list', action: 'feature_disabled' } });
      expect(posts[0]!.body).not.toContain(victimHere.id);
      expect(posts[0]!.body).not.toContain(who.id);
      await expect
        .poll(async () => (await latestAuditEvents(paged, 30)).find((e) => e.action === 'guard.webhook')?.outcome, { timeout: 2_000 })
        .toBe('success');
      await appHere.close();
    } finally {
      await paged.close();
      hook.close();
    }
  });
});

describe('every process', () => {
  let second: Service;
  let secondDb: Database | undefined;
  beforeAll(async () => {
    if (onPostgres) {
      const name = (await sql<{ d: string }>`select current_database() as d`.execute(service.db.owner)).rows[0]!.d;
      secondDb = await openDatabase({ kind: 'postgres', url: urlFor(SERVICE_ROLE, name), ownerUrl: urlFor(OWNER_ROLE, name), poolSize: 4, serviceRole: SERVICE_ROLE });
    }
    second = await createService(testConfig(), { db: secondDb ?? service.db, logger: quiet(), webRoot: '/nonexistent-web-root', sweepRecordings: false, migrate: false });
  });
  afterAll(async () => {
    await second?.close();
    await secondDb?.close();
  });

  it('switches the feature off in both instances within a second, and raises exactly one alert between them', async () => {
    const since = new Date(Date.now() - 1);
    const intruder = await newPatient(service);
    const res = await leak(intruder);
    const event = await requestAuditSeq(service, String(res.headers['x-request-id']));
    await Promise.all(
      [service, second].map((s) => expect.poll(() => s.deps.features.isEnabledNow('replay_list'), { timeout: 1_000, interval: 5 }).toBe(false)),
    );
    expect(Date.now() - event.occurred_at.getTime()).toBeLessThan(1_000);
    await detectNow(service);
    await detectNow(second);
    expect(await alertsSince(service, since)).toHaveLength(1);
  });
});
