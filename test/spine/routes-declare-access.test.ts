import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineRoute } from '../../src/http/define-route';
import { allRoutes } from '../../src/http/routes';
import type { AnyRoute } from '../../src/http/define-route';
import type { BuiltApp } from '../../src/http/app';
import { FEATURE_NAMES } from '../../src/modules/features/features';
import { startTestService, type TestService } from '../harness';

let service: TestService;
beforeAll(async () => {
  service = await startTestService();
});
afterAll(async () => {
  await service?.close();
});

/** Routes anyone may call. Adding one here is a decision, made in review. */
const PUBLIC_ALLOW_LIST = new Set([
  'GET /api/health',
  'GET /api/health/live',
  'GET /api/health/ready',
  'GET /api/session',
  'GET /api/features/status',
  'GET /api/openapi.json',
  'POST /api/auth/register',
  'POST /api/auth/sign-in',
  'POST /api/auth/sign-out',
]);

/** Registered routes that return patient data but name no feature (kill switch) to stop them with. */
function patientDataWithoutFeature(registered: BuiltApp['registered']): string[] {
  return registered.filter((r) => r.route && r.route.egress !== 'none' && !r.route.feature).map((r) => `${r.method} ${r.url}`);
}

describe('every route that serves patient data names its feature', () => {
  it('finds none without one among the registered routes', () => {
    expect(patientDataWithoutFeature(service.built.registered)).toEqual([]);
  });

  it('names only features that exist, in the code and in the database alike', async () => {
    for (const r of allRoutes) if (r.feature) expect(FEATURE_NAMES, `${r.method} ${r.url}`).toContain(r.feature);
    const system = { kind: 'system' as const, id: null, role: null, sessionId: null, reason: 'test: list features' };
    const rows = await service.db.transaction(system, (tx) => tx.selectFrom('features').select('name').orderBy('name').execute());
    expect(rows.map((r) => r.name)).toEqual([...FEATURE_NAMES].sort());
  });

  it('covers at least the capabilities issue 16 names', () => {
    const used = new Set(allRoutes.map((r) => r.feature).filter(Boolean));
    for (const f of ['registration', 'booking', 'rescheduling', 'consultation_join', 'mode_switch', 'recording', 'replay_list', 'replay_playback', 'notes']) {
      expect(used, f).toContain(f);
    }
  });

  it('fails the walk for a patient-data route that names no feature', async () => {
    // Built past defineRoute (which refuses it, below), as a route slipped in by hand would be.
    const throwaway = {
      method: 'GET',
      url: '/api/test-only/leaky',
      summary: 'x',
      tags: [],
      access: { permission: 'profile.read' },
      response: z.object({ patientId: z.string() }),
      egress: (o: { patientId: string }) => [o.patientId],
      handler: async () => ({ patientId: '00000000-0000-4000-8000-000000000000' }),
    } as AnyRoute;
    const { buildApp } = await import('../../src/http/app');
    const built = await buildApp(service.deps, { routes: [throwaway] });
    await built.app.ready();
    try {
      expect(patientDataWithoutFeature(built.registered)).toEqual(['GET /api/test-only/leaky']);
    } finally {
      await built.app.close();
    }
    expect(() => defineRoute(throwaway)).toThrow(/returns patient data but names no feature/);
  });
});

describe('every route declares who may call it', () => {
  it('finds no registered route without a declaration', () => {
    const undeclared = service.built.registered.filter((r) => !r.route && !r.publicReason).map((r) => `${r.method} ${r.url}`);
    expect(service.built.registered.length).toBeGreaterThanOrEqual(allRoutes.length);
    expect(undeclared).toEqual([]);
  });

  it('opens no route to the public beyond the reviewed list', () => {
    const open = service.built.registered
      .filter((r) => r.url.startsWith('/api') && (r.publicReason || (r.route && 'public' in r.route.access)))
      .map((r) => `${r.method} ${r.url}`);
    expect(open.sort()).toEqual([...PUBLIC_ALLOW_LIST].sort());
  });

  it('gives every public route a reason and every other route a resource.action permission', () => {
    for (const r of allRoutes) {
      if ('public' in r.access) expect(r.access.reason.length, `${r.url}`).toBeGreaterThan(10);
      else expect(r.access.permission).toMatch(/^[a-z]+(\.[a-z_]+)+$/);
    }
  });

  it('refuses to define a route that declares nothing', () => {
    expect(() =>
      defineRoute({
        method: 'GET',
        url: '/api/oops',
        summary: 'x',
        tags: [],
        access: undefined as never,
        response: z.object({}),
        egress: 'none',
        handler: async () => ({}),
      }),
    ).toThrow(/declares no access/);
  });

  it('fails the walk when a plain Fastify route slips in', async () => {
    const extra = await startTestService();
    try {
      // Registering after ready() is not possible; build a second app and add a raw route before it starts.
      const { buildApp } = await import('../../src/http/app');
      const built = await buildApp(extra.deps, { routes: [] });
      built.app.get('/api/sneaky', async () => ({ ok: true }));
      await built.app.ready();
      const undeclared = built.registered.filter((r) => !r.route && !r.publicReason).map((r) => `${r.method} ${r.url}`);
      expect(undeclared).toEqual(['GET /api/sneaky']);
      await built.app.close();
    } finally {
      await extra.close();
    }
  });
});
