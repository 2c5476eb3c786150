import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasPermission } from '../../src/access/permissions';
import type { Principal } from '../../src/access/principal';
import { noRequest } from '../../src/access/request-context';
import { openDatabase, sql, type Database } from '../../src/db';
import { allRoutes } from '../../src/http/routes';
import { createLogger } from '../../src/logger';
import { FEATURE_NAMES, killFeature, setFeature, type FeatureName } from '../../src/modules/features/features';
import { createService, type Service } from '../../src/server';
import { dataCounts, latestAuditEvents, newPatient, newStaff, type PatientHandle, type StaffHandle } from '../fixtures';
import { onPostgres, startTestService, testConfig, type TestClient, type TestService } from '../harness';
import { SERVICE_ROLE, OWNER_ROLE, urlFor, withAdmin } from '../pg-admin';

let service: TestService;
let patient: PatientHandle;
let clinician: StaffHandle;
let dpo: StaffHandle;
let admin: StaffHandle;

beforeAll(async () => {
  service = await startTestService();
  patient = await newPatient(service);
  clinician = await newStaff(service, 'clinician');
  dpo = await newStaff(service, 'dpo');
  admin = await newStaff(service, 'admin');
});
afterAll(async () => {
  await service?.close();
});

const PATIENT: Principal = { kind: 'patient', accountId: 'x', sessionId: 'x' };
const CLINICIAN: Principal = { kind: 'clinician', accountId: 'x', sessionId: 'x' };

/** Within a second, in this process: what every process must manage (NOTIFY, or in-process on PGlite). */
async function seen(s: Pick<Service, 'deps'>, name: FeatureName, enabled: boolean): Promise<number> {
  const started = performance.now();
  await expect.poll(() => s.deps.features.isEnabledNow(name), { timeout: 1_000, interval: 5 }).toBe(enabled);
  expect(await s.deps.features.isEnabled(name)).toBe(enabled);
  return performance.now() - started;
}

async function switchAs(who: StaffHandle, name: string, enabled: boolean, reason = 'kill switch test') {
  return who.client.put(`/api/features/${name}`, { enabled, reason });
}

/** A call on the route with the caller who may make it; the ids are random (the switch answers before any lookup). */
function callOf(route: (typeof allRoutes)[number]): { client: TestClient; url: string; body: unknown } {
  const url = route.url.replace(/:(\w+)/g, (_, p: string) => (p === 'seq' ? '0' : randomUUID()));
  const client =
    'public' in route.access
      ? service.client({ ip: '198.51.100.77' })
      : hasPermission(PATIENT, route.access.permission)
        ? patient.client
        : hasPermission(CLINICIAN, route.access.permission)
          ? clinician.client
          : dpo.client;
  return { client, url, body: route.rawBody ? Buffer.from('a chunk') : route.method === 'GET' ? undefined : {} };
}

describe('a feature that is off', () => {
  for (const name of FEATURE_NAMES) {
    const routes = allRoutes.filter((r) => r.feature === name);
    it(`${name}: each of its ${routes.length} routes answers 503 feature_disabled and writes nothing; on again, they serve`, async () => {
      expect(routes.length).toBeGreaterThan(0);
      const off = await switchAs(dpo, name, false, `test: ${name} off`);
      expect(off.status, JSON.stringify(off.body)).toBe(200);
      expect(off.body).toMatchObject({ name, enabled: false, reason: `test: ${name} off`, disabledByKind: 'person' });
      await seen(service, name, false);

      const before = await dataCounts(service);
      for (const route of routes) {
        const { client, url, body } = callOf(route);
        const res = await client.request(route.method, url, body);
        expect(res.status, `${route.method} ${route.url}: ${JSON.stringify(res.body)}`).toBe(503);
        expect(res.body.error).toMatchObject({ code: 'feature_disabled', details: { feature: name } });
        expect(res.body.error.message).toMatch(/switched off/);
        expect(res.headers['retry-after']).toBe('60');
      }
      expect(await dataCounts(service)).toEqual(before);

      expect((await switchAs(dpo, name, true, `test: ${name} on`)).status).toBe(200);
      await seen(service, name, true);
      for (const route of routes) {
        const { client, url, body } = callOf(route);
        const res = await client.request(route.method, url, body);
        expect(res.body?.error?.code, `${route.method} ${route.url}`).not.toBe('feature_disabled');
      }
    });
  }

  it('leaves every other feature serving (a patient still sees their profile while booking is off)', async () => {
    expect((await switchAs(admin, 'booking', false)).status).toBe(200);
    await seen(service, 'booking', false);
    expect((await patient.client.get('/api/profile')).status).toBe(200);
    expect((await patient.client.get('/api/clinicians')).body.error.code).toBe('feature_disabled');
    expect((await switchAs(admin, 'booking', true)).status).toBe(200);
    await seen(service, 'booking', true);
    expect((await patient.client.get('/api/clinicians')).status).toBe(200);
  });
});

describe('who switches features, and the record they leave', () => {
  it('lists every feature with its state, who changed it last and why (DPO and admin)', async () => {
    await switchAs(admin, 'notes', false, 'notes under review');
    for (const who of [dpo, admin]) {
      const res = await who.client.get('/api/features');
      expect(res.status).toBe(200);
      expect(res.body.features.map((f: { name: string }) => f.name).sort()).toEqual([...FEATURE_NAMES].sort());
      expect(res.body.features.find((f: { name: string }) => f.name === 'notes')).toMatchObject({
        enabled: false,
        changedBy: `staff:admin:${admin.id}`,
        reason: 'notes under review',
        disabledByKind: 'person',
      });
    }
    await switchAs(admin, 'notes', true, 'review done');
  });

  it('audits every change with who, when and why', async () => {
    const res = await switchAs(dpo, 'mode_switch', false, 'checking the video switch');
    const [event] = await latestAuditEvents(service, 1);
    expect(event).toMatchObject({
      action: 'feature.disable',
      outcome: 'success',
      actor_id: dpo.id,
      actor_role: 'dpo',
      object_type: 'feature',
      object_id: 'mode_switch',
      request_id: res.headers['x-request-id'],
    });
    expect(JSON.parse(event!.details!)).toMatchObject({ reason: 'checking the video switch', enabled: false, was: true, by: 'person' });
    await switchAs(dpo, 'mode_switch', true, 'checked');
  });

  it('asks for a reason and a known feature', async () => {
    expect((await dpo.client.put('/api/features/booking', { enabled: false })).status).toBe(400);
    expect((await dpo.client.put('/api/features/booking', { enabled: false, reason: ' ' })).status).toBe(400);
    expect((await dpo.client.put('/api/features/no_such_thing', { enabled: false, reason: 'why not' })).status).toBe(404);
  });

  it('after an automatic kill, only the DPO switches the feature back on (admin: 403 dpo_required; the database agrees)', async () => {
    const killed = await service.deps.scopes.system('detection: test rule', noRequest('test'), (scope) =>
      killFeature(scope, 'replay_playback', 'egress denial on a replay'),
    );
    expect(killed).toMatchObject({ enabled: false, disabledByKind: 'automatic', changedBy: 'system(detection: test rule)' });
    await seen(service, 'replay_playback', false);
    const [kill] = await latestAuditEvents(service, 1);
    expect(kill).toMatchObject({ action: 'feature.disable', actor_kind: 'system', system_reason: 'detection: test rule' });

    const before = await dataCounts(service);
    const refused = await switchAs(admin, 'replay_playback', true, 'looks fine to me');
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('dpo_required');
    // The operator's command line is refused too: system work is not the DPO.
    await expect(
      service.deps.scopes.system('operator: features on', noRequest('test'), (scope) => setFeature(scope, 'replay_playback', true, 'operator')),
    ).rejects.toMatchObject({ code: 'dpo_required' });
    expect(await dataCounts(service)).toEqual(before);
    // Row-level security's trigger holds even for code that skips the service's check.
    await expect(
      service.db.transaction({ kind: 'staff', id: admin.id, role: 'admin', sessionId: null, reason: null }, (tx) =>
        tx.updateTable('features').set({ enabled: true }).where('name', '=', 'replay_playback').execute(),
      ),
    ).rejects.toThrow(/only the DPO/);
    expect(service.deps.features.isEnabledNow('replay_playback')).toBe(false);

    // The DPO's decision, with a reason, clears the automatic mark.
    const on = await switchAs(dpo, 'replay_playback', true, 'cause found and fixed');
    expect(on.status).toBe(200);
    expect(on.body).toMatchObject({ enabled: true, disabledByKind: null, changedBy: `staff:dpo:${dpo.id}`, reason: 'cause found and fixed' });
    await seen(service, 'replay_playback', true);
  });

  it('refuses patients and clinicians with 404 and writes only the denial', async () => {
    for (const c of [patient.client, clinician.client]) {
      for (const [method, body] of [['GET', undefined], ['PUT', { enabled: false, reason: 'let me' }]] as const) {
        const before = await dataCounts(service);
        const res = await c.request(method, method === 'GET' ? '/api/features' : '/api/features/booking', body);
        expect(res.status).toBe(404);
        const after = await dataCounts(service);
        expect({ ...after, audit_events: 0 }).toEqual({ ...before, audit_events: 0 });
        expect(after.audit_events - before.audit_events).toBe(1);
        expect((await latestAuditEvents(service, 1))[0]).toMatchObject({ outcome: 'denied' });
      }
    }
    expect(service.deps.features.isEnabledNow('booking')).toBe(true);
  });
});

const quiet = () => createLogger('warn', new Writable({ write: (_c, _e, cb) => cb() }));

describe('every process follows a change within a second', () => {
  let second: Service;
  let secondDb: Database | undefined;

  beforeAll(async () => {
    if (onPostgres) {
      // A second instance with its own connections to the same database, as in production.
      const name = (await sql<{ d: string }>`select current_database() as d`.execute(service.db.owner)).rows[0]!.d;
      secondDb = await openDatabase({ kind: 'postgres', url: urlFor(SERVICE_ROLE, name), ownerUrl: urlFor(OWNER_ROLE, name), poolSize: 4, serviceRole: SERVICE_ROLE });
    }
    // On PGlite the one embedded database is shared in process: its notifications are delivered in process.
    second = await createService(testConfig(), { db: secondDb ?? service.db, logger: quiet(), webRoot: '/nonexistent-web-root', sweepRecordings: false, migrate: false });
  });
  afterAll(async () => {
    await second?.close();
    await secondDb?.close();
  });

  it('sees a switch made through the other instance', async () => {
    for (const enabled of [false, true]) {
      const started = performance.now();
      expect((await switchAs(dpo, 'recording', enabled)).status).toBe(200);
      await Promise.all([seen(service, 'recording', enabled), seen(second, 'recording', enabled)]);
      expect(performance.now() - started).toBeLessThan(1_000);
    }
  });

  it.runIf(onPostgres)('re-reads every flag after its notification connection comes back, so a missed change is not missed', async () => {
    const database = (await sql<{ d: string }>`select current_database() as d`.execute(service.db.owner)).rows[0]!.d;
    // Changed with no notification at all: only a re-read can tell.
    const system = { kind: 'system' as const, id: null, role: null, sessionId: null, reason: 'test: a change whose notification is lost' };
    await service.db.transaction(system, (tx) => tx.updateTable('features').set({ enabled: false, reason: 'changed behind its back' }).where('name', '=', 'notes').execute());
    await new Promise((r) => setTimeout(r, 200));
    expect(service.deps.features.isEnabledNow('notes')).toBe(true);
    await withAdmin((c) =>
      c.query("select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and application_name = 'confidant-listen'", [database]),
    );
    for (const s of [service, second]) {
      await expect.poll(() => s.deps.features.isEnabledNow('notes'), { timeout: 5_000, interval: 20 }).toBe(false);
    }
    // And notifications flow again on the new connection.
    expect((await switchAs(dpo, 'notes', true, 'back on')).status).toBe(200);
    await Promise.all([seen(service, 'notes', true), seen(second, 'notes', true)]);
  });
});
