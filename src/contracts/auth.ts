import { z } from 'zod';
import { IsoDate, IsoDateTime, Uuid } from './common';

export const Email = z
  .string()
  .trim()
  .max(254)
  .pipe(z.email({ message: 'Enter a valid email address.' }))
  .transform((e) => e.toLowerCase());

export const RegisterPatientInput = z.strictObject({
  givenName: z.string().trim().min(1).max(100),
  familyName: z.string().trim().min(1).max(100),
  dateOfBirth: IsoDate,
  email: Email,
  password: z.string().min(1).max(1024),
  nhsNumber: z.string().trim().max(20).optional(),
});

export const SignInInput = z.strictObject({
  email: z.string().trim().max(254).transform((e) => e.toLowerCase()),
  password: z.string().min(1).max(1024),
});

export const MfaCodeInput = z.strictObject({
  /** A 6-digit authenticator code, or a recovery code (xxxxx-xxxxx). */
  code: z.string().trim().min(6).max(20),
});

export const ChangePasswordInput = z.strictObject({
  currentPassword: z.string().min(1).max(1024),
  newPassword: z.string().min(1).max(1024),
});

export const AccountKind = z.enum(['patient', 'clinician', 'staff']);
export const StaffRole = z.enum(['dpo', 'admin']);
export const SessionStage = z.enum(['full', 'mfa', 'enrol']);

/** Who is signed in. `stage` other than `full` means sign-in is not finished. */
export const SessionInfo = z.discriminatedUnion('authenticated', [
  z.object({ authenticated: z.literal(false) }),
  z.object({
    authenticated: z.literal(true),
    stage: SessionStage,
    csrfToken: z.string(),
    account: z.object({
      id: Uuid,
      kind: AccountKind,
      role: StaffRole.nullable(),
      displayName: z.string(),
      email: z.string(),
      mfaEnabled: z.boolean(),
    }),
    permissions: z.array(z.string()),
    idleTimeoutSeconds: z.number().int(),
    /** How long before an appointment its consultation opens (the clinic's setting). */
    consultationJoinEarlySeconds: z.number().int(),
    expiresAt: IsoDateTime,
  }),
]);
export type SessionInfo = z.infer<typeof SessionInfo>;

export const SignInResult = z.object({
  stage: SessionStage,
  csrfToken: z.string(),
});

export const MfaEnrolment = z.object({
  secret: z.string(),
  otpauthUri: z.string(),
  qrSvg: z.string(),
});

export const MfaEnrolled = z.object({
  recoveryCodes: z.array(z.string()),
  csrfToken: z.string(),
});

export const SessionSummary = z.object({
  id: Uuid,
  current: z.boolean(),
  createdAt: IsoDateTime,
  lastSeenAt: IsoDateTime,
  clientIp: z.string().nullable(),
  userAgent: z.string().nullable(),
});
export const SessionList = z.object({ sessions: z.array(SessionSummary) });
