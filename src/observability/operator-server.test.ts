import { connect } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createMetrics } from './metrics';
import { startOperatorServer, type OperatorServer } from './operator-server';

const TOKEN = 'operator-token-0123456789abcdef';

function captureLogs() {
  const lines: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(s) });
  return { logger, lines };
}

const started: OperatorServer[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.close()));
});

async function start(opts: { token?: string; render?: () => Promise<{ body: string; contentType: string }> } = {}) {
  const metrics = createMetrics({ processMetrics: false });
  const { logger, lines } = captureLogs();
  const server = await startOperatorServer({
    host: '127.0.0.1',
    port: 0,
    ...(opts.token !== undefined ? { token: opts.token } : {}),
    metrics: opts.render ? { render: opts.render } : metrics,
    logger,
  });
  started.push(server);
  const url = (path: string) => `http://127.0.0.1:${server.address.port}${path}`;
  return { metrics, server, url, lines };
}

describe('startOperatorServer', () => {
  it('serves the metrics to the right token, in the Prometheus text format', async () => {
    const { metrics, url } = await start({ token: TOKEN });
    metrics.observeRequest('GET', '/api/session', 200, 0.01);
    const res = await fetch(url('/metrics'), { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = await res.text();
    expect(body).toContain('# TYPE confidant_http_request_duration_seconds histogram');
    expect(body).toMatch(/^confidant_http_request_duration_seconds_count\{[^}]*route="\/api\/session"[^}]*\} 1$/m);
  });

  it('refuses a wrong, missing or malformed token with a bare 401', async () => {
    const { url } = await start({ token: TOKEN });
    for (const authorization of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, 'Bearer ', `Basic ${TOKEN}`, TOKEN, undefined]) {
      const res = await fetch(url('/metrics'), authorization === undefined ? {} : { headers: { authorization } });
      expect(res.status, String(authorization)).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
      expect(await res.text()).toBe('');
    }
  });

  it('answers 404 to any other path or method, and 401 before that without the token', async () => {
    const { url } = await start({ token: TOKEN });
    const auth = { authorization: `Bearer ${TOKEN}` };
    expect((await fetch(url('/'), { headers: auth })).status).toBe(404);
    expect((await fetch(url('/metrics/'), { headers: auth })).status).toBe(404);
    expect((await fetch(url('/api/session'), { headers: auth })).status).toBe(404);
    expect((await fetch(url('/metrics'), { method: 'POST', headers: auth })).status).toBe(404);
    expect((await fetch(url('/metrics?x=1'), { headers: auth })).status).toBe(200);
    expect((await fetch(url('/api/session'))).status).toBe(401);
  });

  it('needs no token when none is configured', async () => {
    const { url } = await start();
    expect((await fetch(url('/metrics'))).status).toBe(200);
    expect((await fetch(url('/other'))).status).toBe(404);
  });

  it('refuses an empty token rather than serving to anyone', async () => {
    const { logger } = captureLogs();
    await expect(startOperatorServer({ host: '127.0.0.1', port: 0, token: '', metrics: createMetrics({ processMetrics: false }), logger })).rejects.toThrow(
      /empty/,
    );
  });

  it('answers 500 when collection fails, logging the error by name and code only', async () => {
    const secret = 'patient Jane Doe 943 476 5919';
    const { url, lines } = await start({
      render: () => Promise.reject(Object.assign(new TypeError(secret), { code: 'E_TEST' })),
    });
    const res = await fetch(url('/metrics'));
    expect(res.status).toBe(500);
    expect(await res.text()).toBe('');
    const logged = lines.join('');
    expect(logged).toContain('"errName":"TypeError"');
    expect(logged).toContain('"errCode":"E_TEST"');
    expect(logged).not.toContain('Jane');
  });

  it('survives a malformed request and keeps serving', async () => {
    const { server, url } = await start();
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = connect(server.address.port, '127.0.0.1', () => socket.write('NOT HTTP AT ALL\r\n\r\n'));
      let data = '';
      socket.on('data', (b) => (data += b.toString()));
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    expect((await fetch(url('/metrics'))).status).toBe(200);
  });

  it('closes, even with a kept-alive connection', async () => {
    const { server, url } = await start();
    expect((await fetch(url('/metrics'))).status).toBe(200);
    await server.close();
    await expect(fetch(url('/metrics'))).rejects.toThrow();
  });
});
