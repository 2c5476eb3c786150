import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ZodError, type ZodType } from 'zod';
import { assertEgressAllowed, EgressViolation } from '../access/egress';
import { hasPermission } from '../access/permissions';
import type { Principal } from '../access/principal';
import type { RequestContext } from '../access/request-context';
import { AppError } from '../errors';
import { csrfTokenMatches, SESSION_COOKIE } from '../modules/identity/session-tokens';
import type { AuthenticatedSession, IssuedSession } from '../modules/identity/sessions';
import type { AppDeps } from './app-deps';
import type { AnyRoute, HandlerContext } from './define-route';

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function requestContext(req: FastifyRequest): RequestContext {
  const ua = req.headers['user-agent'];
  return { requestId: String(req.id), clientIp: req.ip ?? null, userAgent: typeof ua === 'string' ? ua : null };
}

function parse<T>(schema: ZodType<T> | undefined, value: unknown, where: string): T {
  if (!schema) return undefined as T;
  const r = schema.safeParse(value ?? (where === 'body' ? undefined : {}));
  if (r.success) return r.data;
  throw validationError(r.error, where);
}

export function validationError(err: ZodError, where: string): AppError {
  const issues = err.issues.slice(0, 20).map((i) => ({
    path: i.path.length ? i.path.join('.') : where,
    // zod's messages name the rule, never echo the value.
    message: i.code === 'unrecognized_keys' ? `Unknown field(s): ${(i as { keys: string[] }).keys.join(', ')}` : i.message,
  }));
  return new AppError('validation_failed', 'Some of the details are missing or not valid.', { issues });
}

function setCookie(reply: FastifyReply, deps: AppDeps, issued: IssuedSession) {
  reply.setCookie(SESSION_COOKIE, issued.token, {
    path: '/',
    httpOnly: true,
    sameSite: 'lax',
    secure: deps.config.secureCookies,
    expires: issued.expiresAt,
  });
}

function denialPrincipalFor(session: AuthenticatedSession | null): Principal {
  return session?.principal ?? { kind: 'anonymous' };
}

export function registerRoute(app: FastifyInstance, deps: AppDeps, route: AnyRoute) {
  app.route({
    method: route.method,
    url: route.url,
    config: { confidantRoute: route },
    ...(route.rawBody ? { bodyLimit: route.rawBody.maxBytes(deps.config) } : {}),
    // A streamed answer (a replay) is audited as served; a HEAD request serves nothing.
    ...(route.send ? { exposeHeadRoute: false } : {}),
    handler: async (req, reply) => {
      const request = requestContext(req);
      const session = await deps.sessions.authenticate(req.cookies[SESSION_COOKIE], request);
      const principal: Principal = session?.principal ?? { kind: 'anonymous' };
      const action = 'permission' in route.access ? route.access.permission : `${route.method} ${route.url}`;

      // Cross-site request forgery: see README "Security". A state-changing call must carry
      // x-csrf-token; with a session it must be that session's token.
      if (STATE_CHANGING.has(route.method)) {
        const presented = req.headers['x-csrf-token'];
        const ok =
          typeof presented === 'string' &&
          presented.length > 0 &&
          (session ? csrfTokenMatches(session.token, presented) : true) &&
          sameOrigin(req, deps.config.publicUrl);
        if (!ok) {
          await deps.scopes.recordDenial(principal, request, { action, details: { reason: 'csrf_failed', route: route.url } });
          throw new AppError('csrf_failed', 'This request could not be verified. Reload the page and try again.');
        }
      }

      if ('permission' in route.access) {
        if (!session) {
          await deps.scopes.recordDenial(principal, request, { action, details: { reason: 'unauthenticated', route: route.url } });
          throw new AppError('unauthenticated', 'Sign in to continue.');
        }
        if (!hasPermission(principal, route.access.permission)) {
          await deps.scopes.recordDenial(principal, request, { action, details: { reason: 'not_permitted', route: route.url } });
          if (principal.kind === 'pending') {
            throw principal.stage === 'mfa'
              ? new AppError('mfa_required', 'Enter the code from your authenticator app to finish signing in.')
              : new AppError('mfa_enrolment_required', 'Set up two-step sign-in to continue.');
          }
          throw new AppError('not_found', 'Not found');
        }
      }

      const params = parse(route.params, req.params, 'params');
      const query = parse(route.query, req.query, 'query');
      // Raw bytes only where the route asked for them, and only there.
      if (Buffer.isBuffer(req.body) !== !!route.rawBody && req.body !== undefined) {
        throw new AppError(
          'unsupported_media_type',
          route.rawBody ? 'Send the chunk as application/octet-stream.' : 'Send the request body as application/json.',
        );
      }
      const body = parse(route.body, req.body, 'body');

      const ctx: Omit<HandlerContext<unknown, unknown, unknown>, 'scope'> = {
        body,
        params,
        query,
        headers: req.headers,
        principal,
        session,
        request,
        deps,
        setSession: (issued) => setCookie(reply, deps, issued),
        clearSession: () =>
          void reply.clearCookie(SESSION_COOKIE, { path: '/', httpOnly: true, sameSite: 'lax', secure: deps.config.secureCookies }),
      };

      let output: unknown;
      let prepared: Promise<unknown> | undefined;
      try {
        if (route.run === 'flow') {
          output = await route.handler(ctx as HandlerContext<unknown, unknown, unknown>);
        } else {
          // GET is a read: a READ ONLY transaction, its audit events group-committed before we answer.
          output = await deps.scopes.run(
            principal,
            request,
            async (scope) => {
              // Written out rather than spread ({ ...ctx, scope }): V8 builds spread objects slowly.
              const out = await route.handler({
                body: ctx.body,
                params: ctx.params,
                query: ctx.query,
                headers: ctx.headers,
                principal: ctx.principal,
                session: ctx.session,
                request: ctx.request,
                deps: ctx.deps,
                setSession: ctx.setSession,
                clearSession: ctx.clearSession,
                scope,
              });
              if (route.egress !== 'none') await assertEgressAllowed(scope, route.egress(out));
              if (route.prepare) {
                // Runs while the commit and the audit events' group commit are awaited; `send`
                // (or the discard below) takes its outcome, so no rejection goes unhandled.
                prepared = route.prepare.start(out, reply, { deps, principal, request });
                prepared.catch(() => undefined);
              }
              return out;
            },
            { readOnly: route.method === 'GET' },
          );
        }
      } catch (err) {
        // Nothing is sent: whatever was prepared for the answer is closed.
        if (prepared) {
          prepared
            .then((p) => route.prepare!.discard(p), () => undefined)
            .catch((e: Error) => deps.logger.error({ errName: e.name, route: route.url }, 'could not discard a prepared answer'));
        }
        if (err instanceof AppError && err.code === 'not_found') {
          await deps.scopes.recordDenial(denialPrincipalFor(session), request, {
            action,
            details: { reason: 'not_found', route: route.url },
          });
        }
        if (err instanceof EgressViolation) {
          await deps.scopes.recordDenial(principal, request, {
            action: 'egress.blocked',
            outcome: 'failure',
            details: { route: route.url, foreignObjects: err.foreignCount },
          });
          deps.logger.fatal({ alert: 'egress_blocked', route: route.url, requestId: request.requestId }, 'egress check blocked a response');
          throw new AppError('egress_denied', 'Something went wrong. The team has been alerted.');
        }
        throw err;
      }

      if (route.send) {
        await route.send(output, reply, { deps, principal, request }, prepared);
        return reply;
      }
      const shaped = route.response.parse(output);
      reply.code(route.status ?? 200);
      return shaped;
    },
  });
}

/** Browsers say where a request came from; a cross-site one is refused even before the token check. */
export function sameOrigin(req: { headers: FastifyRequest['headers'] }, publicUrl: string | undefined): boolean {
  const site = req.headers['sec-fetch-site'];
  if (typeof site === 'string' && site !== 'same-origin' && site !== 'none') return false;
  const origin = req.headers.origin;
  if (typeof origin === 'string' && origin !== 'null') {
    try {
      // Behind a proxy the public address is the one to match, scheme included.
      if (publicUrl) return new URL(origin).origin === new URL(publicUrl).origin;
      return new URL(origin).host === req.headers.host;
    } catch {
      return false;
    }
  }
  return true;
}
