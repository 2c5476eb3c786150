import type { Principal } from './principal';

/** What a principal may do, named `resource.action`. Routes declare one; roles grant them. */
export const Permission = {
  ProfileRead: 'profile.read',
  ProfileUpdate: 'profile.update',
  PasswordChange: 'password.change',
  SessionRead: 'session.read',
  SessionRevoke: 'session.revoke',
  MfaEnrol: 'mfa.enrol',
  MfaVerify: 'mfa.verify',
  AuditRead: 'audit.read',
  StaffRead: 'staff.read',
} as const;
export type Permission = (typeof Permission)[keyof typeof Permission];

const signedIn: Permission[] = [
  Permission.PasswordChange,
  Permission.SessionRead,
  Permission.SessionRevoke,
  Permission.MfaEnrol,
];

/** Default deny: a kind or role not listed here may do nothing. */
const grants: Record<string, ReadonlySet<Permission>> = {
  patient: new Set([...signedIn, Permission.ProfileRead, Permission.ProfileUpdate]),
  clinician: new Set([...signedIn, Permission.StaffRead]),
  'staff:dpo': new Set([...signedIn, Permission.AuditRead, Permission.StaffRead]),
  'staff:admin': new Set([...signedIn, Permission.StaffRead]),
  'pending:mfa': new Set([Permission.MfaVerify]),
  'pending:enrol': new Set([Permission.MfaEnrol]),
};

export function grantKey(p: Principal): string {
  if (p.kind === 'staff') return `staff:${p.role}`;
  if (p.kind === 'pending') return `pending:${p.stage}`;
  return p.kind;
}

export function hasPermission(p: Principal, permission: Permission): boolean {
  return grants[grantKey(p)]?.has(permission) ?? false;
}

export function permissionsOf(p: Principal): Permission[] {
  return [...(grants[grantKey(p)] ?? [])];
}
