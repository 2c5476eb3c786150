import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ZodError, type ZodType } from 'zod';
import { assertEgressAllowed, EgressViolation } from '../access/egress';
import { abortWhy, DeadlineExceeded, raceAbort, stoppedError } from '../db';
import { hasPermission } from '../access/permissions';
import type { Principal } from '../access/principal';
import type { RequestContext } from '../access/request-context';
import { AppError } from '../errors';
import { csrfTokenMatches, SESSION_COOKIE } from '../modules/identity/session-tokens';
import type { AuthenticatedSession, IssuedSession } from '../modules/identity/sessions';
import type { AppDeps } from './app-deps';
import type { AnyRoute, HandlerContext } from './define-route';
import { featureDisabled } from '../modules/features/features';
import { claimIdempotencyKey, completeIdempotencyKey, idempotentRequestOf, type StoredAnswer } from './idempotency';

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
      // The request's deadline (from here: a slow upload's body has already arrived) and, for a
      // change, its client leaving abort `signal`: every transaction the request opens then rolls
      // back, and the caller is answered at once rather than when the database gets round to it.
      const deadline = new RequestDeadline(reply, route.deadlineMs ?? deps.config.requestDeadlineMs, STATE_CHANGING.has(route.method));
      try {
        const request: RequestContext = { ...requestContext(req), signal: deadline.signal };
        // compute() itself refuses to finish once the signal has aborted, so nothing it made
        // is left behind after this answers.
        const computed = await raceAbort(compute(req, reply, deps, route, request), deadline.signal, () => stoppedError(deadline.signal));
        deadline.stop();
        if ('replayed' in computed) {
          reply.header('idempotent-replayed', 'true');
          reply.code(computed.replayed.status);
          return computed.replayed.body;
        }
        if (route.send) {
          await route.send(computed.output, reply, { deps, principal: computed.principal, request }, computed.prepared);
          return reply;
        }
        reply.code(route.status ?? 200);
        return computed.shaped ?? route.response.parse(computed.output);
      } finally {
        deadline.stop();
      }
    },
  });
}

type Computed =
  | { output: unknown; shaped: unknown; prepared: Promise<unknown> | undefined; principal: Principal }
  | { replayed: StoredAnswer };

/**
 * Everything before the answer is written: authentication, CSRF, access, input, the handler in
 * its transaction, the egress check. Runs to its end even when the request's signal has aborted
 * (its transactions then refuse to commit); a prepared answer it leaves behind is discarded.
 */
async function compute(req: FastifyRequest, reply: FastifyReply, deps: AppDeps, route: AnyRoute, request: RequestContext): Promise<Computed> {
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

  // A principal the breach guard has throttled (probing others' ids): refused, from memory, until it ends.
  if (session && 'accountId' in principal && deps.guard.isThrottled(principal.accountId)) {
    throw new AppError('throttled', 'Too many requests for records that could not be found. Please wait a while before trying again.', {
      headers: { 'retry-after': '300' },
    });
  }

  // A feature that is switched off: refused from memory, before its input is read or its handler
  // runs, so nothing it would do happens. Not audited: a kill can be followed by many such calls.
  if (route.feature && !(await deps.features.isEnabled(route.feature))) throw featureDisabled(route.feature);

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
  const idempotent = route.idempotent ? idempotentRequestOf(req.headers, `${route.method} ${route.url}`, { params, body }) : undefined;

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
  /** The handler's output once it has run and passed the egress check: its read may be audited even if nothing is sent. */
  let handled: unknown;
  let shaped: unknown;
  let replayed: StoredAnswer | undefined;
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
          if (idempotent) {
            replayed = (await claimIdempotencyKey(scope, idempotent)) ?? undefined;
            if (replayed) {
              // The first attempt's answer, to the caller who got it then (the key is theirs
              // under row-level security); checked on its way out like any answer.
              await assertEgressAllowed(scope, replayed.patientIds);
              scope.audit({ action, outcome: 'success', details: { idempotentReplay: true, route: route.url } });
              return undefined;
            }
          }
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
          const owners = route.egress !== 'none' ? [...route.egress(out)] : [];
          if (route.egress !== 'none') await assertEgressAllowed(scope, owners);
          const patientIds = [...new Set(owners.map((o) => (typeof o === 'string' ? o : o.patientId)))];
          if (idempotent) {
            shaped = route.response.parse(out);
            await completeIdempotencyKey(scope, idempotent, { status: route.status ?? 200, body: shaped, patientIds });
          }
          handled = out;
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
    if (prepared) discardPrepared(deps, route, prepared);
    if (handled !== undefined) stopped(deps, route, handled, principal, request);
    if (err instanceof AppError && err.code === 'not_found') {
      // The id asked for, so that detection can tell probing (ids that exist, not the caller's)
      // from a stale link.
      const named = namedObject(params);
      await deps.scopes.recordDenial(denialPrincipalFor(session), request, {
        action,
        ...(named ? { objectType: named.type, objectId: named.id } : {}),
        details: { reason: 'not_found', route: route.url },
      });
    }
    if (isAccessViolation(err)) {
      // Row-level security or an ownership trigger refused what the code tried to write: code
      // reached for another patient's rows. The caller learns nothing more than from an unknown id.
      await deps.scopes.recordDenial(principal, request, {
        action: 'rls.violation',
        outcome: 'failure',
        details: { route: route.url, feature: route.feature ?? null, sqlstate: String((err as { code: string }).code) },
      });
      deps.logger.fatal({ alert: 'rls_violation', route: route.url, requestId: request.requestId }, 'the database refused a write to rows outside the caller’s scope');
      throw new AppError('not_found', 'Not found');
    }
    if (err instanceof EgressViolation) {
      await deps.scopes.recordDenial(principal, request, {
        action: 'egress.blocked',
        outcome: 'failure',
        details: { route: route.url, feature: route.feature ?? null, foreignObjects: err.foreignCount },
      });
      deps.logger.fatal({ alert: 'egress_blocked', route: route.url, requestId: request.requestId }, 'egress check blocked a response');
      throw new AppError('egress_denied', 'Something went wrong. The team has been alerted.');
    }
    throw err;
  }
  // Finished after its caller was answered (deadline or client gone): nothing will be sent.
  if (request.signal?.aborted) {
    if (prepared) discardPrepared(deps, route, prepared);
    if (handled !== undefined) stopped(deps, route, handled, principal, request);
    throw new DeadlineExceeded(abortWhy(request.signal));
  }
  if (replayed) return { replayed };
  return { output, shaped, prepared, principal };
}

/**
 * insufficient_privilege (row-level security's WITH CHECK, our ownership and state triggers) and
 * no_data_found (a child row whose parent the caller cannot see): the service's own checks run
 * first, so the database refusing is code that reached past them.
 */
function isAccessViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === '42501' || code === 'P0002';
}

/** The object a request named by id (its first id parameter), as the audit trail types objects. */
const ID_PARAMS: Record<string, string> = {
  appointmentId: 'appointment',
  consultationId: 'consultation',
  recordingId: 'recording',
  notificationId: 'notification',
  clinicianId: 'account',
  sessionId: 'session',
  requestId: 'mode_request',
  exceptionId: 'availability_exception',
};
function namedObject(params: unknown): { type: string; id: string } | null {
  if (typeof params !== 'object' || params === null) return null;
  for (const [key, type] of Object.entries(ID_PARAMS)) {
    const v = (params as Record<string, unknown>)[key];
    if (typeof v === 'string') return { type, id: v };
  }
  return null;
}

/** A streamed answer whose read ran (and may be audited as served) but which was stopped before a byte was sent. */
function stopped(deps: AppDeps, route: AnyRoute, output: unknown, principal: Principal, request: RequestContext) {
  if (!route.stopped || !request.signal?.aborted) return;
  const { signal: _stopped, ...unbound } = request;
  route.stopped(output, { deps, principal, request: unbound }).catch((e: Error) =>
    deps.logger.error({ errName: e.name, route: route.url }, 'could not record an answer that was stopped'),
  );
}

function discardPrepared(deps: AppDeps, route: AnyRoute, prepared: Promise<unknown>) {
  prepared
    .then((p) => route.prepare!.discard(p), () => undefined)
    .catch((e: Error) => deps.logger.error({ errName: e.name, route: route.url }, 'could not discard a prepared answer'));
}

/**
 * A request's deadline and its client's presence, as one AbortSignal: aborted with 'deadline'
 * when the time is up, with 'client_gone' when the connection of a state-changing request closes
 * before the answer is written. Stopped once the answer starts (a replay's stream is not cut by
 * the deadline).
 */
class RequestDeadline {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private readonly onClose: () => void;

  constructor(
    private readonly reply: FastifyReply,
    ms: number,
    stateChanging: boolean,
  ) {
    this.timer = setTimeout(() => this.controller.abort('deadline'), ms);
    // A change whose client has gone is rolled back. A read is not stopped: it changes nothing,
    // and a streamed one (a replay) audits what its viewer received when they go.
    this.onClose = () => {
      if (stateChanging && !reply.raw.writableFinished) this.controller.abort('client_gone');
    };
    reply.raw.once('close', this.onClose);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  stop() {
    if (this.timer === undefined) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.reply.raw.off('close', this.onClose);
  }
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
