import pino, { type Logger } from 'pino';

/**
 * Logs carry request ids, paths and codes, never patient data. Redaction is a second
 * fence for the fields that could hold some if a future call site logged a whole object.
 */
export const REDACT_PATHS = [
  'req.headers.cookie',
  'req.headers.authorization',
  'req.headers["x-csrf-token"]',
  'res.headers["set-cookie"]',
  '*.password',
  '*.currentPassword',
  '*.newPassword',
  '*.email',
  '*.givenName',
  '*.familyName',
  '*.dateOfBirth',
  '*.nhsNumber',
  '*.token',
  '*.csrfToken',
  '*.code',
  '*.secret',
  'body',
  'query',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'confidant' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: {
        req: (req: { id?: string; method?: string; url?: string }) => ({ id: req.id, method: req.method, path: req.url?.split('?')[0] }),
        res: (res: { statusCode?: number }) => ({ status: res.statusCode }),
      },
    },
    destination,
  );
}
