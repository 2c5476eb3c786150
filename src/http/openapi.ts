import { z, type ZodType } from 'zod';
import type { Config } from '../config';
import { ErrorResponse } from '../contracts/common';
import type { AnyRoute } from './define-route';

function schemaOf(s: ZodType, io: 'input' | 'output') {
  return z.toJSONSchema(s, { io, unrepresentable: 'any' });
}

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** The OpenAPI 3.1 document, generated from the same route definitions the server runs. */
export function buildOpenApi(routes: AnyRoute[], config: Config) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const p = r.url.replace(/:([A-Za-z]+)/g, '{$1}');
    const params = r.params ? (schemaOf(r.params, 'input') as { properties?: Record<string, unknown> }) : undefined;
    const isPublic = 'public' in r.access;
    const security: Record<string, string[]>[] = isPublic ? [{}] : [{ sessionCookie: [] }];
    if (STATE_CHANGING.has(r.method)) {
      for (const s of security) s.csrfHeader = [];
    }
    (paths[p] ??= {})[r.method.toLowerCase()] = {
      summary: r.summary,
      tags: r.tags,
      security,
      ...(r.deadlineMs ? { 'x-confidant-deadline-ms': r.deadlineMs } : {}),
      'x-confidant-access': isPublic ? { public: true, reason: (r.access as { reason: string }).reason } : { permission: (r.access as { permission: string }).permission },
      parameters: [
        ...Object.keys(params?.properties ?? {}).map((name) => ({
          name,
          in: 'path',
          required: true,
          schema: params!.properties![name],
        })),
        ...(r.idempotent
          ? [
              {
                name: 'Idempotency-Key',
                in: 'header',
                required: false,
                description:
                  'A key of your choosing (a random UUID) for this one change. If you did not get the answer (a dropped connection, or 503 `outcome_unknown`), send the same request again with the same key: if the first attempt was saved you get its answer (with `Idempotent-Replayed: true`) and nothing happens twice. Keys are kept for 24 hours; a key sent again with a different request answers 422 `idempotency_key_reused`.',
                schema: { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,100}$' },
              },
            ]
          : []),
      ],
      ...(r.rawBody
        ? { requestBody: { required: true, content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } } }
        : r.body
          ? { requestBody: { required: true, content: { 'application/json': { schema: schemaOf(r.body, 'input') } } } }
          : {}),
      responses: {
        ...(r.send
          ? {
              200: { description: 'The whole resource', content: { [r.produces ?? 'application/octet-stream']: { schema: { type: 'string', format: 'binary' } } } },
              206: { description: 'The requested byte range (Range: bytes=a-b)', content: { [r.produces ?? 'application/octet-stream']: { schema: { type: 'string', format: 'binary' } } } },
            }
          : { [String(r.status ?? 200)]: { description: 'Success', content: { 'application/json': { schema: schemaOf(r.response, 'output') } } } }),
        default: { description: 'Error with a stable code', content: { 'application/json': { schema: schemaOf(ErrorResponse, 'output') } } },
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: `Confidant API (${config.clinicName})`,
      version: '0.1.0',
      description: [
        'All timestamps are UTC ISO 8601. Errors answer `{ error: { code, message, requestId } }` with a stable code.',
        'Sessions: an HttpOnly cookie `confidant_session` (SameSite=Lax; Secure over https).',
        'Cross-site request forgery: every POST, PUT, PATCH and DELETE must send the header `x-csrf-token`.',
        'With a session, its value must be the `csrfToken` from GET /api/session (or from the sign-in answer);',
        'without one, any non-empty value (a custom header forces a CORS preflight that this server never grants).',
        'Requests whose Origin or Sec-Fetch-Site names another site are refused with `csrf_failed`.',
        `Every request has a deadline of ${config.requestDeadlineMs} ms (REQUEST_DEADLINE_MS; a route that walks data of growing size states its own in x-confidant-deadline-ms), counted once its body has arrived:`,
        'past it, or when the client goes away, nothing the request had not committed is committed, and the answer is 503 `deadline_exceeded`.',
        'A failing dependency answers 503 with a stable code and a Retry-After header: `database_unavailable` (nothing was done),',
        '`deadline_exceeded` (nothing was changed), `storage_full` (nothing was saved), or `outcome_unknown`',
        '(the connection was lost while committing: the change may or may not have been saved; retry with the same Idempotency-Key where the route takes one).',
      ].join(' '),
    },
    components: {
      securitySchemes: {
        sessionCookie: { type: 'apiKey', in: 'cookie', name: 'confidant_session' },
        csrfHeader: { type: 'apiKey', in: 'header', name: 'x-csrf-token' },
      },
    },
    paths,
  };
}
