import { z } from 'zod';
import { IsoDateTime } from './common';

/** A kill switch as the DPO and admins see it: its state, and who changed it last and why. */
export const Feature = z.object({
  name: z.string(),
  description: z.string(),
  enabled: z.boolean(),
  changedAt: IsoDateTime,
  /** Who made the last change, as the audit log names them (`staff:dpo:<id>`, `system(<reason>)`). */
  changedBy: z.string(),
  reason: z.string(),
  /** How the last switch-off happened; after an `automatic` one only the DPO switches it back on. */
  disabledByKind: z.enum(['person', 'automatic']).nullable(),
});
export type Feature = z.infer<typeof Feature>;
export const FeatureList = z.object({ features: z.array(Feature) });

// Any short name: one that names no feature answers 404, as an id that names nothing does.
export const FeatureNameParams = z.strictObject({ name: z.string().min(1).max(60) });

export const ChangeFeatureInput = z.strictObject({
  enabled: z.boolean(),
  reason: z.string().trim().min(3, 'Give a reason (at least 3 characters).').max(500),
});

/** What anyone (the web app, before and after sign-in) is told: which features are on now. */
export const FeatureStatus = z.object({ name: z.string(), enabled: z.boolean() });
export const FeatureStatusList = z.object({ features: z.array(FeatureStatus) });
