import { z } from 'zod';

/**
 * A UUID, canonicalised to lower case: the form the database returns and the form every name built
 * from an id (a recording's blob, a cache key) uses. An id the client sends in upper case is the
 * same object, and is treated as such everywhere, because it is made lower case at the boundary.
 */
export const Uuid = z.uuid().overwrite((s) => s.toLowerCase());
// Within years the database and every client handle the same way (and no absurd offsets).
const FIRST = Date.UTC(1900, 0, 1);
const LAST = Date.UTC(2200, 0, 1);
export const IsoDateTime = z.iso
  .datetime({ offset: true })
  .refine((v) => /(Z|[+-](0\d|1[0-5]):[0-5]\d)$/.test(v), 'Use UTC (Z) or an offset between -15:59 and +15:59.')
  .refine((v) => {
    const t = Date.parse(v);
    return t >= FIRST && t < LAST;
  }, 'Use a date between 1900 and 2199.');
export const IsoDate = z.iso.date();

export const ErrorResponse = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    requestId: z.string().optional(),
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    details: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
  }),
});
export type ErrorResponse = z.infer<typeof ErrorResponse>;

export const Ok = z.object({ ok: z.literal(true) });
