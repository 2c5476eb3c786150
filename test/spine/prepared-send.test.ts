import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { buildApp } from '../../src/http/app';
import { defineRoute } from '../../src/http/define-route';
import { allRoutes } from '../../src/http/routes';
import { startTestService, type TestService } from '../harness';
import { newPatient, type PatientHandle, restoreKilledFeatures } from '../fixtures';

// A route that streams its answer may prepare it (open a file) while the read's audit events are
// being made durable. What it prepares is started only once the egress check has passed, reaches
// `send` only once the events are durable, and is discarded when they cannot be written.

let victim: PatientHandle;
const log: string[] = [];

function streamingRoute(url: string, patientOf: (principal: { accountId?: string }) => string) {
  return defineRoute({
    method: 'GET',
    url,
    summary: 'test only',
    tags: ['test'],
    access: { permission: 'session.read' },
    feature: 'replay_playback',
    response: z.any(),
    egress: (out: { patientId: string }) => [out.patientId],
    handler: async ({ principal, scope }) => {
      const patientId = patientOf(principal as { accountId?: string });
      scope.audit({ action: 'test.streamed', objectType: 'test', patientId });
      return { patientId };
    },
    prepare: {
      start: async (out) => {
        log.push(`start ${out.patientId}`);
        return { handle: `opened for ${out.patientId}` };
      },
      discard: (p) => void log.push(`discard ${p.handle}`),
    },
    send: async (_out, reply, _ctx, prepared) => {
      const p = await prepared!;
      log.push(`send ${p.handle}`);
      await reply.code(200).header('content-type', 'text/plain').send('streamed');
    },
  });
}

const own = streamingRoute('/api/test/streamed-own', (p) => p.accountId ?? '');
const leaky = streamingRoute('/api/test/streamed-leaky', () => victim.id);

let service: TestService;
let app: Awaited<ReturnType<typeof buildApp>>['app'];
beforeAll(async () => {
  service = await startTestService();
  victim = await newPatient(service);
  app = (await buildApp(service.deps, { routes: [...allRoutes, own, leaky] })).app;
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  await service?.close();
});

// A blocked answer is a containment signal: the breach guard switches its feature off; back on after each test.
afterEach(async () => {
  await restoreKilledFeatures(service);
});

describe('a prepared send', () => {
  it('is refused at definition without a send, or on a flow route', () => {
    const base = { method: 'GET' as const, url: '/x', summary: 'x', tags: [], access: { permission: 'session.read' as const }, response: z.any(), egress: 'none' as const };
    const prepare = { start: async () => 1, discard: () => undefined };
    expect(() => defineRoute({ ...base, handler: async () => 1, prepare })).toThrow(/only a scoped route with a send may prepare/);
    expect(() =>
      defineRoute({ ...base, run: 'flow', handler: async () => 1, prepare, send: async () => undefined }),
    ).toThrow(/only a scoped route with a send may prepare/);
  });

  it('reaches send only once the audit events are durable, and is not discarded', async () => {
    const me = await newPatient(service);
    log.length = 0;
    // The reads' group commit waits for the test's word.
    const db = service.db;
    const transaction = db.transaction.bind(db);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    db.transaction = ((principal, fn, o) =>
      principal.reason === 'audit group commit' ? held.then(() => transaction(principal, fn, o)) : transaction(principal, fn, o)) as typeof db.transaction;
    try {
      const answer = app.inject({ method: 'GET', url: '/api/test/streamed-own', headers: { cookie: me.client.cookie! } });
      for (let i = 0; i < 100 && log.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 100));
      // Prepared while the event is not yet durable; not sent.
      expect(log).toEqual([`start ${me.id}`]);
      release();
      const res = await answer;
      expect(res.statusCode).toBe(200);
      expect(res.body).toBe('streamed');
      expect(log).toEqual([`start ${me.id}`, `send opened for ${me.id}`]);
    } finally {
      db.transaction = transaction;
      release();
    }
  });

  it('is never started for an answer the egress check blocks', async () => {
    const intruder = await newPatient(service);
    log.length = 0;
    const res = await app.inject({ method: 'GET', url: '/api/test/streamed-leaky', headers: { cookie: intruder.client.cookie! } });
    expect(res.statusCode).toBe(500);
    expect(res.json().error.code).toBe('egress_denied');
    expect(res.body).not.toContain(victim.id);
    expect(log).toEqual([]);
  });

  it('is discarded, and nothing sent, when the audit events cannot be made durable', async () => {
    const me = await newPatient(service);
    log.length = 0;
    // The reads' audit writer refuses from now on (as when the service shuts down); last test here.
    await service.deps.scopes.close();
    const res = await app.inject({ method: 'GET', url: '/api/test/streamed-own', headers: { cookie: me.client.cookie! } });
    expect(res.statusCode).toBe(500);
    expect(res.json().error.code).toBe('internal');
    for (let i = 0; i < 50 && log.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(log).toEqual([`start ${me.id}`, `discard opened for ${me.id}`]);
  });
});
