import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { verifyAuditChain } from '../../src/audit/verify';
import { buildApp } from '../../src/http/app';
import { defineRoute } from '../../src/http/define-route';
import { allRoutes } from '../../src/http/routes';
import { startTestService, type TestService } from '../harness';
import { dataCounts, newPatient } from '../fixtures';

// A GET route with a bug that writes: the READ ONLY transaction must refuse it.
const writingGet = defineRoute({
  method: 'GET',
  url: '/api/test/writing-get',
  summary: 'test only',
  tags: ['test'],
  access: { permission: 'profile.read' },
  response: z.object({ ok: z.boolean() }),
  egress: 'none',
  handler: async ({ scope }) => {
    await scope.tx.updateTable('patient_profiles').set({ family_name: 'Changed by a GET' }).execute();
    return { ok: true };
  },
});

let service: TestService;
beforeAll(async () => {
  service = await startTestService();
});
afterAll(async () => {
  await service?.close();
});

describe('reads: read-only transactions, group-committed audit', () => {
  it('audits every one of many concurrent reads, in one intact chain', async () => {
    const patients = await Promise.all(Array.from({ length: 8 }, () => newPatient(service)));
    const before = await dataCounts(service);
    const replies = await Promise.all(patients.flatMap((p) => Array.from({ length: 10 }, () => p.client.get('/api/profile'))));
    expect(replies.every((r) => r.status === 200)).toBe(true);
    const after = await dataCounts(service);
    expect(after.audit_events! - before.audit_events!).toBe(80);
    const verified = await service.db.transaction({ kind: 'system', id: null, role: null, sessionId: null, reason: 'test' }, (tx) => verifyAuditChain(tx));
    expect(verified.ok).toBe(true);
    // Each read event names its own patient and request.
    const events = await service.db.transaction({ kind: 'system', id: null, role: null, sessionId: null, reason: 'test' }, (tx) =>
      tx.selectFrom('audit_events').select(['actor_id', 'patient_id', 'request_id']).where('action', '=', 'profile.read').execute(),
    );
    expect(events.filter((e) => e.actor_id === e.patient_id)).toHaveLength(events.length);
    expect(new Set(events.map((e) => e.request_id)).size).toBe(events.length);
  });

  it('refuses a write attempted inside a GET, and changes nothing', async () => {
    const p = await newPatient(service);
    const built = await buildApp(service.deps, { routes: [...allRoutes, writingGet] });
    await built.app.ready();
    try {
      const res = await built.app.inject({ method: 'GET', url: '/api/test/writing-get', headers: { cookie: p.client.cookie! } });
      expect(res.statusCode).toBe(500);
      expect(res.json().error.code).toBe('internal');
      expect((await p.client.get('/api/profile')).body.familyName).toBe('Patient');
    } finally {
      await built.app.close();
    }
  });
});
