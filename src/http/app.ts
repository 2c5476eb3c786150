import { existsSync } from 'node:fs';
import path from 'node:path';
import cookie from '@fastify/cookie';
import fastifyStatic from '@fastify/static';
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import { CommitOutcomeUnknown, DeadlineExceeded } from '../db';
import { AppError, type ErrorBody } from '../errors';
import { databaseFailureAnswer } from './database-failure';
import { compileTrust } from './client-address';
import type { AppDeps } from './app-deps';
import type { AnyRoute } from './define-route';
import { buildOpenApi } from './openapi';
import { registerRoute } from './register-route';
import { allRoutes } from './routes';

declare module 'fastify' {
  interface FastifyContextConfig {
    confidantRoute?: AnyRoute;
    /** Non-API routes (static files) say why they are open. */
    publicReason?: string;
  }
}

export interface BuiltApp {
  app: FastifyInstance;
  /** Every route Fastify registered, with what it declared: the route test reads this. */
  registered: { method: string; url: string; route?: AnyRoute; publicReason?: string }[];
}

export const JSON_BODY_LIMIT = 64 * 1024;

const CSP = [
  "default-src 'self'",
  "img-src 'self' data: blob:",
  "media-src 'self' blob:",
  "style-src 'self'",
  "script-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export async function buildApp(deps: AppDeps, opts: { webRoot?: string; routes?: AnyRoute[] } = {}): Promise<BuiltApp> {
  const registered: BuiltApp['registered'] = [];
  const hasWebApp = !!opts.webRoot && existsSync(path.join(opts.webRoot, 'index.html'));
  const app: FastifyInstance = Fastify({
    loggerInstance: deps.logger,
    genReqId: () => randomUUID(),
    // Only the configured load balancers may say who the client is (client-address.ts).
    ...(deps.config.trustProxy.length > 0 ? { trustProxy: compileTrust(deps.config.trustProxy) } : {}),
    bodyLimit: JSON_BODY_LIMIT,
    logController: new LogController({ disableRequestLogging: true }),
    routerOptions: { ignoreTrailingSlash: true },
    // A URL the router cannot decode (or an over-long path parameter) is answered here, before
    // any hook runs: give it the same headers and error shape, and never echo the URL back.
    frameworkErrors: (error, req, res) => {
      const reply = res as FastifyReply;
      setSecurityHeaders(req, reply, deps);
      req.log.info({ method: req.method, path: '(unparsed)', status: 400, errCode: error.code }, 'request');
      const body: ErrorBody = { error: { code: 'bad_request', message: 'The request is not valid.', requestId: String(req.id) } };
      void reply.code(400).header('cache-control', 'no-store').send(body);
    },
  });

  app.addHook('onRoute', (r) => {
    const methods = Array.isArray(r.method) ? r.method : [r.method];
    for (const m of methods) {
      if (m === 'HEAD') continue;
      registered.push({
        method: m,
        url: r.url,
        ...(r.config?.confidantRoute ? { route: r.config.confidantRoute } : {}),
        ...(r.config?.publicReason ? { publicReason: r.config.publicReason } : {}),
      });
    }
  });

  // Only JSON bodies; anything else is refused before it reaches a handler.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    if (body === '' || body === undefined) return done(null, undefined);
    // PostgreSQL text cannot hold NUL; refuse it here with a clear answer rather than fail later.
    if (/\\u0000/i.test(body as string)) {
      return done(new AppError('validation_failed', 'Text may not contain NUL characters.'), undefined);
    }
    try {
      done(null, JSON.parse(body as string));
    } catch {
      done(new AppError('invalid_json', 'The request body is not valid JSON.'), undefined);
    }
  });

  // Raw bytes (recording chunks); routes that did not ask for them refuse them (register-route).
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  // Callback-style hooks: no promise per request and hook.
  app.addHook('onRequest', (req, reply, done) => {
    setSecurityHeaders(req, reply, deps);
    done();
  });

  app.addHook('onResponse', (req, reply, done) => {
    // The route's pattern, never the URL as sent: a query string or an unknown path could
    // carry something it should not. Real routes hold only random ids. (reqId is bound by Fastify.)
    const route = req.routeOptions.url;
    const pathLogged = route && !route.includes('*') ? req.url.split('?')[0] : route ? '(web app)' : '(unmatched)';
    req.log.info({ method: req.method, path: pathLogged, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
    deps.metrics.observeRequest(req.method, route, reply.statusCode, reply.elapsedTime / 1000);
    done();
  });

  app.setErrorHandler(async (error: FastifyError | AppError | Error, req, reply) => {
    const appError = toAppError(error, req);
    if (appError.status === 503) {
      deps.metrics.countUnavailable(appError.code);
      if (appError.code === 'deadline_exceeded') deps.metrics.countDeadlineExceeded(req.routeOptions.url);
      if (!(error instanceof DeadlineExceeded) && !(error instanceof AppError)) deps.metrics.countDbError(error instanceof CommitOutcomeUnknown ? (error.cause ?? error) : error);
    } else if (isSqlState((error as { code?: unknown }).code)) {
      deps.metrics.countDbError(error);
    }
    if (appError.status === 503 && appError.code !== 'not_ready') {
      // A dependency failing, not a bug: what failed and how, never a message or a stack.
      const level = appError.code === 'storage_full' ? 'error' : 'warn';
      req.log[level](
        { errName: error.name, errCode: (error as { code?: unknown }).code, answer: appError.code, ...(appError.code === 'storage_full' ? { alert: 'storage_full' } : {}) },
        'request failed: dependency unavailable',
      );
    } else if (appError.status >= 500) {
      // Never the message (it may quote data); the name, code and where it happened.
      const stack = (error.stack ?? '').split('\n').slice(1, 8).join('\n');
      req.log.error({ errName: error.name, errCode: (error as { code?: unknown }).code, stack }, 'request failed');
    }
    if (appError.headers) reply.headers(appError.headers);
    const body: ErrorBody = {
      error: {
        code: appError.code,
        message: appError.message,
        requestId: String(req.id),
        ...(appError.issues ? { issues: appError.issues } : {}),
        ...(appError.details ? { details: appError.details } : {}),
      },
    };
    reply.header('cache-control', 'no-store');
    return reply.code(appError.status).send(body);
  });

  app.setNotFoundHandler(async (req, reply) => {
    if (!isApi(req) && hasWebApp && req.method === 'GET') {
      return reply.type('text/html').sendFile('index.html');
    }
    return reply.code(404).send({ error: { code: 'not_found', message: 'Not found', requestId: String(req.id) } });
  });

  await app.register(cookie);

  const routes = opts.routes ?? allRoutes;
  for (const r of routes) registerRoute(app, deps, r);

  const openapi = buildOpenApi(routes, deps.config);
  app.get('/api/openapi.json', { config: { publicReason: 'API description; holds no data' } }, async () => openapi);

  if (hasWebApp) {
    await app.register(fastifyStatic, {
      root: opts.webRoot,
      wildcard: false,
      index: ['index.html'],
      config: { publicReason: 'the web app bundle; holds no data' },
    } as Parameters<typeof fastifyStatic>[1]);
  }

  return { app, registered };
}

function setSecurityHeaders(req: FastifyRequest, reply: FastifyReply, deps: AppDeps) {
  reply.header('content-security-policy', CSP);
  reply.header('x-content-type-options', 'nosniff');
  reply.header('referrer-policy', 'no-referrer');
  reply.header('x-frame-options', 'DENY');
  reply.header('cross-origin-opener-policy', 'same-origin');
  reply.header('cross-origin-resource-policy', 'same-origin');
  reply.header('permissions-policy', 'camera=(self), microphone=(self), geolocation=(), payment=()');
  if (deps.config.secureCookies) reply.header('strict-transport-security', 'max-age=63072000; includeSubDomains');
  if (isApi(req)) reply.header('cache-control', 'no-store');
  reply.header('x-request-id', String(req.id));
}

function isSqlState(code: unknown): boolean {
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}

function isApi(req: FastifyRequest) {
  return req.url === '/api' || req.url.startsWith('/api/') || req.url.startsWith('/api?');
}

function toAppError(error: FastifyError | AppError | Error, req: FastifyRequest): AppError {
  if (error instanceof AppError) return error;
  const failure = databaseFailureAnswer(error);
  if (failure) return failure;
  const code = (error as FastifyError).code;
  const status = (error as FastifyError).statusCode;
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('payload_too_large', `The request body is larger than ${Math.round((req.routeOptions.bodyLimit ?? JSON_BODY_LIMIT) / 1024)} KB.`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new AppError(
        'unsupported_media_type',
        req.routeOptions.config?.confidantRoute?.rawBody ? 'Send the chunk as application/octet-stream.' : 'Send the request body as application/json.',
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new AppError('invalid_json', 'The request body is empty.');
    default:
      break;
  }
  // A value the database refused as data (SQLSTATE class 22: out of range, bad encoding): the
  // caller's input, not our bug. Validation should have caught it; this is the safety net.
  if (typeof code === 'string' && /^22[0-9A-Z]{3}$/.test(code)) return new AppError('bad_request', 'A value in the request is out of range.');
  if (status === 404) return new AppError('not_found', 'Not found');
  if (status === 405) return new AppError('method_not_allowed', 'Method not allowed');
  if (typeof status === 'number' && status >= 400 && status < 500) return new AppError('bad_request', 'The request is not valid.');
  return new AppError('internal', 'Something went wrong on our side. Try again in a moment.');
}
