import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineRoute } from '../../src/http/define-route';
import { allRoutes } from '../../src/http/routes';
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
  'GET /api/openapi.json',
  'POST /api/auth/register',
  'POST /api/auth/sign-in',
  'POST /api/auth/sign-out',
]);

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
