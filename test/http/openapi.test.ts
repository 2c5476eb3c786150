import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AnyRoute } from '../../src/http/define-route';
import { allRoutes } from '../../src/http/routes';
import { startTestService, type TestService } from '../harness';

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const HTTP_METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);

interface Operation {
  summary?: string;
  security?: Record<string, string[]>[];
  parameters?: { name: string; in: string; required?: boolean; schema?: unknown }[];
  requestBody?: { required?: boolean; content?: Record<string, { schema?: unknown }> };
  responses?: Record<string, { description?: string; content?: Record<string, { schema?: unknown }> }>;
  'x-confidant-access'?: { public?: true; reason?: string; permission?: string };
}
interface OpenApiDoc {
  openapi: string;
  info: { title: string; version: string; description: string };
  components: { securitySchemes: Record<string, { type: string; in: string; name: string }> };
  paths: Record<string, Record<string, Operation>>;
}

const templateOf = (url: string) => url.replace(/:([A-Za-z]+)/g, '{$1}');

let service: TestService;
let doc: OpenApiDoc;
beforeAll(async () => {
  service = await startTestService();
  const res = await service.client().get('/api/openapi.json');
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  doc = res.body;
});
afterAll(async () => {
  await service?.close();
});

function operationOf(r: AnyRoute): Operation {
  const op = doc.paths[templateOf(r.url)]?.[r.method.toLowerCase()];
  expect(op, `${r.method} ${r.url} is missing from the OpenAPI document`).toBeDefined();
  return op!;
}

describe('GET /api/openapi.json', () => {
  it('is an OpenAPI 3.1 document with the two security schemes', () => {
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    expect(doc.info.title).toEqual(expect.any(String));
    expect(doc.info.version).toEqual(expect.any(String));
    expect(doc.components.securitySchemes.sessionCookie).toEqual({ type: 'apiKey', in: 'cookie', name: 'confidant_session' });
    expect(doc.components.securitySchemes.csrfHeader).toEqual({ type: 'apiKey', in: 'header', name: 'x-csrf-token' });
    for (const p of Object.keys(doc.paths)) expect(p, p).toMatch(/^\/api\//);
  });

  it('describes every route the server runs, and nothing it does not', () => {
    const expected = new Set(allRoutes.map((r) => `${r.method.toLowerCase()} ${templateOf(r.url)}`));
    const documented = new Set<string>();
    for (const [p, ops] of Object.entries(doc.paths)) {
      for (const m of Object.keys(ops)) {
        expect(HTTP_METHODS, `${p}: ${m}`).toContain(m);
        documented.add(`${m} ${p}`);
      }
    }
    expect([...documented].sort()).toEqual([...expected].sort());
    // And every route Fastify actually registered under /api is in allRoutes (or is this document).
    const registered = service.built.registered
      .filter((r) => r.url.startsWith('/api/') && r.url !== '/api/openapi.json')
      .map((r) => `${r.method.toLowerCase()} ${templateOf(r.url)}`);
    expect(registered.length).toBeGreaterThan(0);
    for (const r of registered) expect(expected, r).toContain(r);
  });

  it.each(allRoutes.map((r) => [`${r.method} ${r.url}`, r] as const))('%s: security, CSRF, access and shapes', (_k, r) => {
    const op = operationOf(r);
    expect(op.summary).toBe(r.summary);
    const security = op.security;
    expect(Array.isArray(security) && security.length > 0).toBe(true);
    const schemeNames = Object.keys(doc.components.securitySchemes);
    for (const requirement of security!) for (const name of Object.keys(requirement)) expect(schemeNames).toContain(name);

    if ('public' in r.access) {
      expect(op['x-confidant-access']).toEqual({ public: true, reason: r.access.reason });
      expect(r.access.reason.length).toBeGreaterThan(10);
    } else {
      expect(op['x-confidant-access']).toEqual({ permission: r.access.permission });
      // Every alternative requires the session cookie: there is no anonymous way in.
      for (const requirement of security!) expect(requirement).toHaveProperty('sessionCookie');
    }

    if (STATE_CHANGING.has(r.method)) {
      for (const requirement of security!) expect(requirement).toHaveProperty('csrfHeader');
    } else {
      for (const requirement of security!) expect(requirement).not.toHaveProperty('csrfHeader');
    }

    const pathParams = [...r.url.matchAll(/:([A-Za-z]+)/g)].map((m) => m[1]);
    expect((op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name).sort()).toEqual(pathParams.sort());
    for (const p of (op.parameters ?? []).filter((q) => q.in === 'path')) {
      expect(p.required).toBe(true);
      expect(p.schema).toBeTypeOf('object');
    }
    // Idempotent routes say so, as an optional header; no other route takes headers as parameters.
    const headers = (op.parameters ?? []).filter((q) => q.in === 'header');
    expect(headers.map((h) => [h.name, h.required])).toEqual(r.idempotent ? [['Idempotency-Key', false]] : []);

    if (r.rawBody) {
      expect(Object.keys(op.requestBody?.content ?? {})).toEqual(['application/octet-stream']);
    } else if (r.body) {
      expect(op.requestBody?.required).toBe(true);
      expect(Object.keys(op.requestBody?.content ?? {})).toEqual(['application/json']);
      expect(op.requestBody!.content!['application/json']!.schema).toMatchObject({ type: 'object', additionalProperties: false });
    } else {
      expect(op.requestBody).toBeUndefined();
    }

    if (r.send) {
      // A byte stream (a replay): the whole of it, or a range of it.
      for (const status of ['200', '206']) expect(op.responses?.[status]?.content?.[r.produces!]?.schema).toMatchObject({ format: 'binary' });
    } else {
      const success = op.responses?.[String(r.status ?? 200)];
      expect(success?.content?.['application/json']?.schema).toBeTypeOf('object');
    }
    const errorSchema = op.responses?.default?.content?.['application/json']?.schema as { properties?: Record<string, unknown> };
    expect(errorSchema?.properties).toHaveProperty('error');
  });

  it('explains the CSRF rule in info.description', () => {
    const d = doc.info.description;
    expect(d).toContain('x-csrf-token');
    for (const m of ['POST', 'PUT', 'PATCH', 'DELETE']) expect(d).toContain(m);
    expect(d).toContain('csrfToken');
    expect(d).toContain('/api/session');
    expect(d).toContain('csrf_failed');
    expect(d).toMatch(/origin/i);
  });
});
