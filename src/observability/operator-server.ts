import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';

export interface OperatorServerOptions {
  host: string;
  port: number;
  /** When set, every request must carry `Authorization: Bearer <token>`. */
  token?: string;
  metrics: { render(): Promise<{ body: string; contentType: string }> };
  logger: Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;
}

export interface OperatorServer {
  address: AddressInfo;
  close(): Promise<void>;
}

/**
 * The operator's port: `GET /metrics` and nothing else. It is a plain node:http server apart
 * from the public API so that no route, hook or proxy rule of the API can expose it, and so that
 * a scrape still answers when the API's event handling is what is in trouble.
 */
export async function startOperatorServer(opts: OperatorServerOptions): Promise<OperatorServer> {
  const { logger, metrics } = opts;
  if (opts.token !== undefined && opts.token.length === 0) throw new Error('the operator token is empty');
  // Digests of equal length, so the comparison takes the same time whatever was sent.
  const expected = opts.token === undefined ? null : digest(opts.token);

  const authorised = (req: IncomingMessage): boolean => {
    if (!expected) return true;
    const match = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
    return match !== null && timingSafeEqual(digest(match[1]!), expected);
  };

  const answer = (res: ServerResponse, status: number, headers: Record<string, string> = {}, body = '') => {
    res.writeHead(status, { 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body), ...headers });
    res.end(body);
  };

  const fail = (res: ServerResponse, err: unknown) => {
    logger.error(errorFields(err), 'metrics collection failed');
    if (!res.headersSent) answer(res, 500);
    else res.destroy();
  };

  const server = createServer((req, res) => {
    res.on('error', (err) => logger.debug(errorFields(err), 'operator response failed'));
    try {
      if (!authorised(req)) return answer(res, 401, { 'www-authenticate': 'Bearer' });
      const path = (req.url ?? '').split('?')[0];
      if (req.method !== 'GET' || path !== '/metrics') return answer(res, 404);
      metrics
        .render()
        .then(({ body, contentType }) => answer(res, 200, { 'content-type': contentType }, body))
        .catch((err: unknown) => fail(res, err));
    } catch (err) {
      // An exception thrown from a request listener would end the whole process.
      fail(res, err);
    }
  });
  // A scrape is small and quick; a client that dribbles its headers is cut off early.
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    logger.debug(errorFields(err), 'operator request refused');
    if (socket.writable && err.code !== 'ECONNRESET') socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => logger.error(errorFields(err), 'operator server failed'));

  const address = server.address() as AddressInfo;
  if (!expected && !isLoopback(address.address)) {
    logger.warn({ host: address.address, port: address.port }, 'metrics are served without a token on a non-loopback address');
  }
  logger.info({ host: address.address, port: address.port, auth: expected ? 'bearer' : 'none' }, 'operator metrics listening');

  let closing: Promise<void> | undefined;
  return {
    address,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Prometheus keeps its connection open between scrapes.
        server.closeIdleConnections();
      })),
  };
}

/** Never the message: it could quote a header or a value. */
function errorFields(err: unknown): { errName?: unknown; errCode?: unknown } {
  if (typeof err !== 'object' || err === null) return { errName: typeof err };
  return { errName: (err as { name?: unknown }).name, errCode: (err as { code?: unknown }).code };
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

function isLoopback(host: string): boolean {
  return host === '::1' || host.startsWith('127.') || host === '::ffff:127.0.0.1';
}
