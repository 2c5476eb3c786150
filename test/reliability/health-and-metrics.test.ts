import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { buildApp } from '../../src/http/app';
import { defineRoute } from '../../src/http/define-route';
import { newPatient } from '../fixtures';
import { onPostgres, startTestService, testConfig, type TestService } from '../harness';

const dataDir = mkdtempSync(path.join(tmpdir(), 'confidant-health-'));
let service: TestService;

beforeAll(async () => {
  service = await startTestService({ config: testConfig({ DATA_DIR: dataDir, METRICS_PORT: '0' }) });
});
afterAll(async () => {
  await service?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('health checks', () => {
  it('liveness answers without touching anything; readiness lists its checks', async () => {
    const client = service.client();
    expect((await client.get('/api/health/live')).body).toEqual({ status: 'ok' });
    const ready = await client.get('/api/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ready', checks: { database: 'ok', migrations: 'ok', dataDir: 'ok', blobStore: 'ok', disk: 'ok' } });
    // The old endpoint keeps working.
    expect((await client.get('/api/health')).body).toMatchObject({ status: 'ok' });
  });

  it('goes red with the reason when the data directory takes no write, and green again by itself', async () => {
    const client = service.client();
    const moved = `${dataDir}-moved`;
    const { renameSync } = await import('node:fs');
    renameSync(dataDir, moved);
    writeFileSync(dataDir, 'not a directory');
    try {
      const red = await client.get('/api/health/ready');
      expect(red.status).toBe(503);
      expect(red.headers['retry-after']).toBe('1');
      expect(red.body.error.code).toBe('not_ready');
      expect(red.body.error.details).toMatchObject({ database: 'ok', dataDir: 'not_writable', blobStore: 'not_writable' });
      expect(red.body.error.message).toMatch(/data directory.*recording store/);
      // Liveness is about the process: still fine.
      expect((await client.get('/api/health/live')).status).toBe(200);
    } finally {
      rmSync(dataDir);
      renameSync(moved, dataDir);
    }
    expect((await client.get('/api/health/ready')).status).toBe(200);
    const log = service.logs.join('');
    expect(log).toMatch(/"msg":"not ready"/);
    expect(log.lastIndexOf('"msg":"ready"')).toBeGreaterThan(log.indexOf('"msg":"not ready"'));
  });
});

describe('Prometheus metrics', () => {
  it('are served on the operator port, never on the public API', async () => {
    const p = await newPatient(service);
    expect((await p.client.get('/api/profile')).status).toBe(200);
    expect(service.operatorAddress).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(`${service.operatorAddress}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toMatch(/confidant_http_request_duration_seconds_count\{[^}]*route="\/api\/profile"[^}]*status="200"[^}]*\} [1-9]/);
    // The read's audit event went through the group commit.
    expect(text).toMatch(/confidant_audit_group_commit_seconds_count\{outcome="committed"\} [1-9]/);
    if (onPostgres) expect(text).toMatch(/confidant_db_pool_connections\{state="in_use"\} \d/);
    for (const url of ['/metrics', '/api/metrics']) expect((await service.client().get(url)).status).toBe(404);
  });
});

describe('a failing dependency answers 503 with a stable code', () => {
  const failing = (err: Error) =>
    defineRoute({
      method: 'GET',
      url: '/api/test/fail',
      summary: 'test',
      tags: ['test'],
      access: { public: true, reason: 'test' },
      run: 'flow',
      response: z.object({}),
      egress: 'none',
      handler: async () => Promise.reject(err),
    });
  const cases: [string, Error, string, string][] = [
    ['disk full (PostgreSQL 53100)', Object.assign(new Error('could not extend file'), { code: '53100' }), 'storage_full', '60'],
    ['disk full (ENOSPC from the blob store)', Object.assign(new Error('no space'), { code: 'ENOSPC' }), 'storage_full', '60'],
    ['the server shutting down (57P01)', Object.assign(new Error('terminating connection'), { code: '57P01' }), 'database_unavailable', '2'],
    ['a refused connection', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }), 'database_unavailable', '2'],
    ["pg's lost connection", new Error('Connection terminated unexpectedly'), 'database_unavailable', '2'],
    ['a statement timeout (57014)', Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' }), 'deadline_exceeded', '1'],
    ['a lock timeout (55P03)', Object.assign(new Error('lock timeout'), { code: '55P03' }), 'deadline_exceeded', '1'],
  ];
  for (const [what, err, code, retryAfter] of cases) {
    it(`${what} → ${code}`, async () => {
      const { app } = await buildApp(service.deps, { routes: [failing(err)] });
      const res = await app.inject({ method: 'GET', url: '/api/test/fail' });
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBe(retryAfter);
      const body = res.json();
      expect(body.error.code).toBe(code);
      // Never the driver's message.
      expect(res.body).not.toContain(err.message);
      await app.close();
    });
  }
});

describe('a full disk', () => {
  it('still serves a signed-in caller the reads that need no write (free slots), and refuses the rest with storage_full', async () => {
    const p = await newPatient(service);
    // Every write transaction fails as PostgreSQL does when it cannot extend a file.
    const db = service.db;
    const transaction = db.transaction.bind(db);
    db.transaction = ((principal, fn, o) =>
      o?.readOnly ? transaction(principal, fn, o) : Promise.reject(Object.assign(new Error('could not extend file'), { code: '53100' }))) as typeof db.transaction;
    service.deps.sessions.clear();
    try {
      // Signing the caller in writes a last-seen stamp: it is skipped, not refused.
      const slots = await p.client.get('/api/slots?limit=3');
      expect(slots.status, JSON.stringify(slots.body)).toBe(200);
      expect(Array.isArray(slots.body.slots)).toBe(true);
      // A read of patient data (their own account too) is audited before it is answered: that write cannot happen.
      for (const url of ['/api/profile', '/api/session']) {
        const res = await p.client.get(url);
        expect(res.status, url).toBe(503);
        expect(res.body.error.code).toBe('storage_full');
      }
      const change = await p.client.patch('/api/profile', { givenName: 'Full' });
      expect(change.status).toBe(503);
      expect(change.body.error.code).toBe('storage_full');
      expect(service.logs.join('')).toMatch(/"alert":"storage_full"/);
    } finally {
      db.transaction = transaction;
    }
    expect((await p.client.get('/api/profile')).body.givenName).toBe('Test');
  });
});
