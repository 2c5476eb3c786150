import { z } from 'zod';
import { IsoDate, IsoDateTime, Uuid } from './common';

export const PatientProfile = z.object({
  patientId: Uuid,
  givenName: z.string(),
  familyName: z.string(),
  dateOfBirth: IsoDate,
  nhsNumber: z.string().nullable(),
  email: z.string(),
  createdAt: IsoDateTime,
});
export type PatientProfile = z.infer<typeof PatientProfile>;

export const UpdateProfileInput = z
  .strictObject({
    givenName: z.string().trim().min(1).max(100).optional(),
    familyName: z.string().trim().min(1).max(100).optional(),
  })
  .refine((v) => v.givenName !== undefined || v.familyName !== undefined, { message: 'Nothing to change.' });
