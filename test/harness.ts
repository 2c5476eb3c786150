import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { LightMyRequestResponse } from 'fastify';
import { loadConfig, type Config } from '../src/config';
import { openDatabase, type Database } from '../src/db';
import { createLogger } from '../src/logger';
import { createService, type Service } from '../src/server';
import { inject } from 'vitest';
import { OWNER_ROLE, SERVICE_ROLE, urlFor, withAdmin } from './pg-admin';

export const onPostgres = process.env.TEST_DATABASE === 'postgres';

/** A fresh, migrated database for one suite, on whichever engine this run tests. */
export async function freshDatabase(): Promise<Database> {
  if (onPostgres) {
    const template = inject('pgTemplate');
    const name = `confidant_t_${template.slice('confidant_tpl_'.length)}_${randomBytes(6).toString('hex')}`;
    await withAdmin((c) => c.query(`create database ${name} template ${template} owner ${OWNER_ROLE}`));
    return openDatabase({
      kind: 'postgres',
      url: urlFor(SERVICE_ROLE, name),
      ownerUrl: urlFor(OWNER_ROLE, name),
      poolSize: 10,
      serviceRole: SERVICE_ROLE,
    });
  }
  const tar = await readFile(path.resolve('.test-cache/pglite-template.tar'));
  // In this test process's thread: the same PGlite without the worker's messages, which cost the
  // in-process suites a fifth of npm test's time (3m20-3m48 against 2m49 on a 2-core machine). The
  // worker itself is tested by src/db/embedded-pglite.test.ts, and the service as it really runs
  // (worker, data directory on disk) by test/process, test/faults and every browser test.
  return openDatabase({ kind: 'pglite', loadDataDir: new Blob([tar]), serviceRole: SERVICE_ROLE, thread: 'main' });
}

/** This test process's data directory (the recording master key and blobs live there). */
export const TEST_DATA_DIR = mkdtempSync(path.join(tmpdir(), 'confidant-test-'));
process.once('exit', () => rmSync(TEST_DATA_DIR, { recursive: true, force: true }));

export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({ CONFIDANT_DEMO: '0', DATA_DIR: TEST_DATA_DIR, LOG_LEVEL: 'info', ...overrides });
}

export interface TestService extends Service {
  logs: string[];
  client(opts?: { ip?: string; userAgent?: string }): TestClient;
}

export async function startTestService(opts: { config?: Config; db?: Database } = {}): Promise<TestService> {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs.push(String(chunk));
      cb();
    },
  });
  const config = opts.config ?? testConfig();
  const db = opts.db ?? (await freshDatabase());
  const service = await createService(config, { db, logger: createLogger('info', sink), webRoot: '/nonexistent-web-root', sweepRecordings: false });
  await service.built.app.ready();
  return {
    ...service,
    logs,
    close: async () => {
      await service.close();
      await db.close();
    },
    client: (copts = {}) => new TestClient(service, copts),
  };
}

export interface Reply {
  status: number;
  body: any;
  headers: LightMyRequestResponse['headers'];
  raw: LightMyRequestResponse;
}

/** A browser-like caller: keeps its cookie and its CSRF token, as the web app does. */
export class TestClient {
  cookie: string | undefined;
  csrf: string | undefined;
  constructor(
    private readonly service: Service,
    private readonly opts: { ip?: string; userAgent?: string },
  ) {}

  async request(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
    const stateChanging = method !== 'GET' && method !== 'HEAD';
    const res = await this.service.built.app.inject({
      method: method as 'GET',
      url,
      remoteAddress: this.opts.ip ?? '127.0.0.1',
      headers: {
        'user-agent': this.opts.userAgent ?? 'confidant-tests',
        ...(this.cookie ? { cookie: this.cookie } : {}),
        ...(stateChanging
          ? { 'x-csrf-token': this.csrf ?? 'none', 'content-type': Buffer.isBuffer(body) ? 'application/octet-stream' : 'application/json' }
          : {}),
        ...headers,
      },
      ...(body !== undefined
        ? { payload: Buffer.isBuffer(body) || typeof body === 'string' ? body : JSON.stringify(body) }
        : stateChanging
          ? { payload: '{}' }
          : {}),
    });
    const setCookie = res.cookies.find((c) => c.name === 'confidant_session');
    if (setCookie) this.cookie = setCookie.value ? `confidant_session=${setCookie.value}` : undefined;
    let parsed: unknown = undefined;
    try {
      parsed = res.body ? JSON.parse(res.body) : undefined;
    } catch {
      parsed = res.body;
    }
    const p = parsed as { csrfToken?: string } | undefined;
    if (p && typeof p === 'object' && typeof p.csrfToken === 'string') this.csrf = p.csrfToken;
    return { status: res.statusCode, body: parsed, headers: res.headers, raw: res };
  }

  get(url: string) {
    return this.request('GET', url);
  }
  post(url: string, body?: unknown, headers?: Record<string, string>) {
    return this.request('POST', url, body, headers);
  }
  patch(url: string, body?: unknown) {
    return this.request('PATCH', url, body);
  }
  put(url: string, body?: unknown, headers?: Record<string, string>) {
    return this.request('PUT', url, body, headers);
  }
  delete(url: string) {
    return this.request('DELETE', url);
  }
}
