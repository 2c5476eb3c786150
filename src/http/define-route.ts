import type { FastifyReply } from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';
import type { ZodType } from 'zod';
import { EgressViolation, type EgressOwner } from '../access/egress';
import type { Permission } from '../access/permissions';
import type { Principal } from '../access/principal';
import type { RequestContext } from '../access/request-context';
import type { Scope } from '../access/scope';
import type { AuthenticatedSession, IssuedSession } from '../modules/identity/sessions';
import type { Config } from '../config';
import type { FeatureName } from '../modules/features/features';
import type { AppDeps } from './app-deps';

/**
 * Who may call a route. There is no default: a route that declares nothing cannot be
 * registered, and a test walks every registered route to prove it.
 */
export type Access =
  | { public: true; reason: string }
  | { permission: Permission };

export type HttpMethod = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';

export interface HandlerContext<B, P, Q> {
  body: B;
  params: P;
  query: Q;
  /** The request's headers (Range, Content-Type); never logged. */
  headers: IncomingHttpHeaders;
  principal: Principal;
  session: AuthenticatedSession | null;
  request: RequestContext;
  deps: AppDeps;
  /** Present for `run: 'scoped'` routes: the caller's transaction. */
  scope: Scope;
  setSession(issued: IssuedSession): void;
  clearSession(): void;
}

/** What `send` and `prepare` are told about the request. */
export interface SendContext {
  deps: AppDeps;
  principal: Principal;
  request: RequestContext;
}

export interface RouteDefinition<B = unknown, P = unknown, Q = unknown, R = unknown, S = unknown> {
  method: HttpMethod;
  url: string;
  summary: string;
  tags: string[];
  access: Access;
  body?: ZodType<B>;
  params?: ZodType<P>;
  query?: ZodType<Q>;
  response: ZodType<R>;
  status?: number;
  /**
   * The patients that patient-owned objects in the output belong to; the egress check
   * proves each is in the caller's scope. `'none'` for outputs that hold no patient data.
   */
  egress: 'none' | ((output: R) => Iterable<string | EgressOwner>);
  /**
   * The feature (kill switch) this route belongs to: while it is off the route answers 503
   * `feature_disabled` before its handler runs. Required of every route that returns patient data.
   */
  feature?: FeatureName;
  /**
   * `scoped` (the default): the handler runs inside the caller's transaction.
   * `flow`: sign-in flows that create principals and open their own scopes; they may not
   * return patient data.
   */
  run?: 'scoped' | 'flow';
  handler: (ctx: HandlerContext<B, P, Q>) => Promise<R>;
  /**
   * The body is raw bytes (`application/octet-stream`, a Buffer), up to this many bytes, instead
   * of JSON. Used for recording chunks.
   */
  rawBody?: { maxBytes: (config: Config) => number };
  /**
   * Writes the answer itself (a byte stream) instead of JSON shaped by `response`. Runs after the
   * transaction has committed, its audit events are durable and the egress check has passed.
   * `prepared`: what `prepare.start` made, when the route has one.
   */
  send?: (output: R, reply: FastifyReply, ctx: SendContext, prepared: Promise<S> | undefined) => Promise<void>;
  /**
   * Work `send` will need that can run while the read's audit events are being made durable
   * (opening and checking a file): started once the egress check has passed, never writing to
   * the reply. Its result goes to `send`, or to `discard` if the request fails before `send` (the
   * transaction or the audit write failed), so nothing it opened is left open.
   */
  prepare?: {
    start: (output: R, reply: FastifyReply, ctx: SendContext) => Promise<S>;
    discard: (prepared: S) => void | Promise<void>;
  };
  /**
   * A streamed answer stopped at its deadline after its read ran (its audit events may be
   * durable) but before `send`: records that nothing was sent. Runs with no deadline.
   */
  stopped?: (output: R, ctx: SendContext) => Promise<void>;
  /** The media type `send` writes, for the API description. */
  produces?: string;
  /**
   * Accepts an `Idempotency-Key` header: a retry with the same key gets the first committed
   * attempt's answer and changes nothing (src/http/idempotency.ts). For state-changing routes of
   * signed-in callers whose answer is JSON.
   */
  idempotent?: true;
  /**
   * This route's deadline, when it must differ from REQUEST_DEADLINE_MS: work that grows with the
   * data (walking the whole audit chain) rather than a patient's click.
   */
  deadlineMs?: number;
}

export type AnyRoute = RouteDefinition<any, any, any, any, any>;

export function defineRoute<B = undefined, P = undefined, Q = undefined, R = unknown, S = unknown>(
  def: RouteDefinition<B, P, Q, R, S>,
): RouteDefinition<B, P, Q, R, S> {
  if (!def.access || (!('public' in def.access) && !('permission' in def.access))) {
    throw new Error(`route ${def.method} ${def.url} declares no access`);
  }
  if (def.prepare && (!def.send || def.run === 'flow')) {
    throw new Error(`route ${def.method} ${def.url}: only a scoped route with a send may prepare`);
  }
  if (def.idempotent && (def.method === 'GET' || def.run === 'flow' || def.send || !('permission' in def.access))) {
    throw new Error(`route ${def.method} ${def.url}: only a scoped, signed-in, state-changing JSON route may be idempotent`);
  }
  if (def.egress !== 'none' && !def.feature) {
    throw new Error(`route ${def.method} ${def.url} returns patient data but names no feature`);
  }
  if (def.run === 'flow' && def.egress !== 'none') {
    throw new Error(`flow route ${def.method} ${def.url} may not return patient data`);
  }
  return def;
}

/**
 * Who owns each patient-owned object in the output: its `patientId` (services put it on every
 * such object they return; the response schema strips it when the caller need not see it), and
 * the clinician it belongs to when it names one (`clinicianId`, or `clinician.id`). Objects
 * nested inside are owners too. An object passed here without a `patientId` fails closed: a
 * response the check cannot read is a bug, never an answer.
 */
export function patientIdsOf(objects: Iterable<unknown>): EgressOwner[] {
  const out: EgressOwner[] = [];
  for (const o of objects) {
    const before = out.length;
    collectOwners(o, out, 0);
    if (out.length === before || !isRecord(o) || typeof o.patientId !== 'string') {
      throw new EgressViolation(1, 'an object without its patientId');
    }
  }
  return out;
}

/** Objects and arrays to look into; bytes (keys, media) hold no owner. */
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !ArrayBuffer.isView(v);

function collectOwners(v: unknown, out: EgressOwner[], depth: number): void {
  if (!isRecord(v)) return;
  // Deeper than any response of ours: fail closed rather than leave a part unchecked.
  if (depth > 8) throw new EgressViolation(1, 'an object nested too deep to check');
  if (Array.isArray(v)) {
    for (const item of v) collectOwners(item, out, depth + 1);
    return;
  }
  if ('patientId' in v) {
    if (typeof v.patientId !== 'string') throw new EgressViolation(1, 'an object whose patientId is not an id');
    const clinician = typeof v.clinicianId === 'string' ? v.clinicianId : isRecord(v.clinician) && typeof v.clinician.id === 'string' ? v.clinician.id : undefined;
    out.push(clinician ? { patientId: v.patientId, clinicianId: clinician } : { patientId: v.patientId });
  }
  for (const [key, value] of Object.entries(v)) if (key !== 'clinician') collectOwners(value, out, depth + 1);
}
