import { randomBytes, randomUUID } from 'node:crypto';
import type { Scope } from '../../access/scope';
import { isUniqueViolation } from '../../db';
import { AppError } from '../../errors';
import type { MfaSecretBox } from './mfa-secrets';
import { assertAcceptablePassword, hashPassword } from './passwords';

export type StaffRoleName = 'clinician' | 'dpo' | 'admin';

/** A readable one-time password an operator can pass on; the person changes it after sign-in. */
export function generateInitialPassword(): string {
  const words = randomBytes(18).toString('base64url');
  return `${words.slice(0, 6)}-${words.slice(6, 12)}-${words.slice(12, 18)}`;
}

/** Operator work (system scope): staff must enrol TOTP at their first sign-in. */
export async function createStaffAccount(
  scope: Scope,
  input: {
    email: string;
    displayName: string;
    role: StaffRoleName;
    password: string;
    /** An authenticator secret already shared with the person (demo and tests), sealed by `box`. */
    mfa?: { secret: string; box: MfaSecretBox };
    mfaRequired?: boolean;
  },
): Promise<{ id: string }> {
  if (scope.principal.kind !== 'system') throw new AppError('not_found', 'Not found');
  assertAcceptablePassword(input.password, [input.displayName, input.email.split('@')[0] ?? '']);
  const id = randomUUID();
  const hash = await hashPassword(input.password);
  try {
    await scope.tx
      .insertInto('accounts')
      .values({
        id,
        kind: input.role === 'clinician' ? 'clinician' : 'staff',
        staff_role: input.role === 'clinician' ? null : input.role,
        email: input.email.toLowerCase(),
        display_name: input.displayName,
        mfa_required: input.mfaRequired ?? true,
        mfa_enabled_at: input.mfa ? new Date() : null,
      })
      .execute();
  } catch (err) {
    if (isUniqueViolation(err, 'accounts_email_key')) throw new AppError('email_taken', 'An account with this email already exists.');
    throw err;
  }
  await scope.tx
    .insertInto('account_credentials')
    .values({ account_id: id, password_hash: hash, mfa_secret: input.mfa ? input.mfa.box.seal(id, 'active', input.mfa.secret) : null })
    .execute();
  scope.audit({ action: 'staff.create', objectType: 'account', objectId: id, details: { role: input.role } });
  return { id };
}

/** Who sees a colleague's email, two-step verification state and account age: those who manage accounts. */
function seesAccountDetails(scope: Scope): boolean {
  const p = scope.principal;
  return p.kind === 'staff' && (p.role === 'admin' || p.role === 'dpo');
}

export async function listStaff(scope: Scope) {
  const base = scope.tx
    .selectFrom('accounts')
    .select(['id', 'kind', 'staff_role', 'display_name'])
    .where('kind', '<>', 'patient')
    .where('disabled_at', 'is', null)
    .orderBy('display_name');
  const detailed = seesAccountDetails(scope);
  const summary = (r: { id: string; kind: string; staff_role: string | null; display_name: string }) => ({
    id: r.id,
    kind: r.kind as 'clinician' | 'staff',
    role: (r.staff_role ?? 'clinician') as StaffRoleName,
    displayName: r.display_name,
  });
  // Only what the caller may see is even read.
  const staff = detailed
    ? (await base.select(['email', 'mfa_enabled_at', 'created_at']).execute()).map((r) => ({
        ...summary(r),
        email: r.email,
        mfaEnabled: r.mfa_enabled_at !== null,
        createdAt: r.created_at.toISOString(),
      }))
    : (await base.execute()).map(summary);
  scope.audit({ action: 'staff.list', objectType: 'account', details: { count: staff.length, detailed } });
  return staff;
}
