import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app';
import { createLogger } from '../../src/logger';
import { createService, type Service } from '../../src/server';
import { GOOD_PASSWORD, newPatient, uniqueEmail } from '../fixtures';
import { startTestService, testConfig, type TestService } from '../harness';

/** A spread of answers: success, auth refusal, validation, parser and router errors, API and not. */
const PROBES: { method: 'GET' | 'POST' | 'PATCH' | 'HEAD' | 'PUT'; url: string; payload?: string; headers?: Record<string, string> }[] = [
  { method: 'GET', url: '/api/health' },
  { method: 'HEAD', url: '/api/health' },
  { method: 'GET', url: '/api/session' },
  { method: 'GET', url: '/api/openapi.json' },
  { method: 'GET', url: '/api/profile' },
  { method: 'GET', url: '/api/does-not-exist' },
  { method: 'PUT', url: '/api/profile', payload: '{}' },
  { method: 'POST', url: '/api/auth/sign-in', payload: '{"email":', headers: { 'x-csrf-token': 'x' } },
  { method: 'POST', url: '/api/auth/sign-in', payload: '[]', headers: { 'x-csrf-token': 'x' } },
  { method: 'POST', url: '/api/auth/sign-in', payload: 'a=b', headers: { 'x-csrf-token': 'x', 'content-type': 'text/plain' } },
  { method: 'POST', url: '/api/auth/sign-in', payload: `{"email":"${'x'.repeat(200_000)}"}`, headers: { 'x-csrf-token': 'x' } },
  { method: 'POST', url: '/api/auth/sign-in', payload: '{}' },
  { method: 'GET', url: '/api/%E0%A4%A' },
  { method: 'GET', url: '/' },
  { method: 'GET', url: '/patient/profile' },
  { method: 'GET', url: '/%E0%A4%A' },
];

async function probe(app: FastifyInstance, p: (typeof PROBES)[number]): Promise<LightMyRequestResponse> {
  return app.inject({
    method: p.method,
    url: p.url,
    headers: { ...(p.payload !== undefined ? { 'content-type': 'application/json' } : {}), ...p.headers },
    ...(p.payload !== undefined ? { payload: p.payload } : {}),
  });
}

function expectBrowserHardening(res: LightMyRequestResponse, label: string) {
  const csp = String(res.headers['content-security-policy'] ?? '');
  expect(csp, label).toMatch(/(^|;\s*)frame-ancestors 'none'(;|$)/);
  expect(res.headers['x-content-type-options'], label).toBe('nosniff');
  expect(res.headers['referrer-policy'], label).toBe('no-referrer');
}

function isApi(url: string) {
  return url === '/api' || url.startsWith('/api/') || url.startsWith('/api?');
}

function sessionCookieHeader(res: LightMyRequestResponse): string {
  const raw = res.headers['set-cookie'];
  const all = (Array.isArray(raw) ? raw : raw ? [raw] : []).filter((c) => c.startsWith('confidant_session='));
  expect(all, JSON.stringify(raw)).toHaveLength(1);
  return all[0]!;
}

function attributes(setCookie: string): string[] {
  return setCookie
    .split(';')
    .slice(1)
    .map((a) => a.trim().toLowerCase());
}

function expectSessionCookie(setCookie: string, secure: boolean) {
  const attrs = attributes(setCookie);
  expect(attrs, setCookie).toContain('httponly');
  expect(attrs, setCookie).toContain('samesite=lax');
  expect(attrs, setCookie).toContain('path=/');
  if (secure) expect(attrs, setCookie).toContain('secure');
  else expect(attrs, setCookie).not.toContain('secure');
  // A real session token, not an empty placeholder.
  expect(setCookie.split(';')[0]!.length).toBeGreaterThan('confidant_session='.length + 20);
}

async function registerAndSignIn(service: Service) {
  const email = uniqueEmail('cookie');
  const register = await service.built.app.inject({
    method: 'POST',
    url: '/api/auth/register',
    headers: { 'content-type': 'application/json', 'x-csrf-token': 'x' },
    payload: JSON.stringify({ givenName: 'Cookie', familyName: 'Jar', dateOfBirth: '1980-02-02', email, password: GOOD_PASSWORD }),
  });
  expect(register.statusCode, register.body).toBe(201);
  const signIn = await service.built.app.inject({
    method: 'POST',
    url: '/api/auth/sign-in',
    headers: { 'content-type': 'application/json', 'x-csrf-token': 'x' },
    payload: JSON.stringify({ email, password: GOOD_PASSWORD }),
  });
  expect(signIn.statusCode, signIn.body).toBe(200);
  return [register, signIn];
}

// One database for both configurations; the https service is a second process on it.
let service: TestService;
let httpsService: Service;
beforeAll(async () => {
  service = await startTestService();
  httpsService = await createService(testConfig({ PUBLIC_URL: 'https://clinic.example' }), {
    db: service.db,
    logger: createLogger('silent'),
    webRoot: '/nonexistent-web-root',
  });
  await httpsService.built.app.ready();
});
afterAll(async () => {
  await httpsService?.close();
  await service?.close();
});

describe('over http (PUBLIC_URL not https)', () => {

  it('hardens every response, marks every /api response no-store, and sends no HSTS', async () => {
    const statuses = new Set<number>();
    for (const p of PROBES) {
      const res = await probe(service.built.app, p);
      const label = `${p.method} ${p.url.slice(0, 60)} → ${res.statusCode}`;
      statuses.add(res.statusCode);
      expect(res.statusCode, label).toBeLessThan(500);
      expectBrowserHardening(res, label);
      if (isApi(p.url)) expect(res.headers['cache-control'], label).toBe('no-store');
      expect(res.headers['strict-transport-security'], label).toBeUndefined();
    }
    // The probes really did reach the different answer paths.
    for (const s of [200, 400, 401, 403, 404, 413, 415]) expect(statuses).toContain(s);
  });

  it('keeps the same headers on a signed-in patient’s data and on their errors', async () => {
    const p = await newPatient(service);
    for (const res of [await p.client.get('/api/profile'), await p.client.patch('/api/profile', { givenName: 5 })]) {
      expectBrowserHardening(res.raw, res.raw.raw.req.url ?? '');
      expect(res.headers['cache-control']).toBe('no-store');
    }
  });

  it('sets the session cookie HttpOnly, SameSite=Lax, Path=/ and not Secure', async () => {
    for (const res of await registerAndSignIn(service)) expectSessionCookie(sessionCookieHeader(res), false);
  });

  it('hardens the web app’s own files, its fallback page and its 404s', async () => {
    const webRoot = await mkdtemp(path.join(tmpdir(), 'confidant-web-'));
    await mkdir(path.join(webRoot, 'assets'));
    await writeFile(path.join(webRoot, 'index.html'), '<!doctype html><title>Confidant</title>');
    await writeFile(path.join(webRoot, 'assets', 'app.js'), 'console.log(1)');
    const { app } = await buildApp(service.deps, { webRoot });
    try {
      await app.ready();
      for (const [url, status, type] of [
        ['/', 200, /text\/html/],
        ['/index.html', 200, /text\/html/],
        ['/assets/app.js', 200, /javascript/],
        ['/patient/profile', 200, /text\/html/],
        ['/api/does-not-exist', 404, /application\/json/],
      ] as const) {
        const res = await app.inject({ method: 'GET', url });
        expect(res.statusCode, url).toBe(status);
        expect(res.headers['content-type'], url).toMatch(type);
        expectBrowserHardening(res, url);
        expect(res.headers['strict-transport-security'], url).toBeUndefined();
        if (isApi(url)) expect(res.headers['cache-control'], url).toBe('no-store');
      }
    } finally {
      await app.close();
      await rm(webRoot, { recursive: true, force: true });
    }
  });
});

describe('behind https (PUBLIC_URL=https://clinic.example)', () => {
  it('is really configured for https', () => {
    expect(httpsService.config.secureCookies).toBe(true);
    expect(service.config.secureCookies).toBe(false);
  });

  it('sends HSTS on every response, API or not, success or error', async () => {
    for (const p of PROBES) {
      const res = await probe(httpsService.built.app, p);
      const label = `${p.method} ${p.url.slice(0, 60)} → ${res.statusCode}`;
      expectBrowserHardening(res, label);
      expect(res.headers['strict-transport-security'], label).toMatch(/^max-age=(\d+)/);
      expect(Number(/max-age=(\d+)/.exec(String(res.headers['strict-transport-security']))![1]), label).toBeGreaterThanOrEqual(31_536_000);
      if (isApi(p.url)) expect(res.headers['cache-control'], label).toBe('no-store');
    }
  });

  it('sets the session cookie Secure as well as HttpOnly, SameSite=Lax, Path=/', async () => {
    for (const res of await registerAndSignIn(httpsService)) expectSessionCookie(sessionCookieHeader(res), true);
  });
});
