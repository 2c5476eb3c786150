export type StaffRole = 'dpo' | 'admin';
export type AccountKind = 'patient' | 'clinician' | 'staff';

export type Principal =
  | { kind: 'anonymous' }
  | { kind: 'patient'; accountId: string; sessionId: string }
  | { kind: 'clinician'; accountId: string; sessionId: string }
  | { kind: 'staff'; role: StaffRole; accountId: string; sessionId: string }
  /** Signed in with a password, still owing a second factor: may only finish sign-in. */
  | { kind: 'pending'; stage: 'mfa' | 'enrol'; accountKind: AccountKind; role: StaffRole | null; accountId: string; sessionId: string }
  | { kind: 'system'; reason: string };

export type AuthenticatedPrincipal = Extract<Principal, { accountId: string }>;

export function isAuthenticated(p: Principal): p is AuthenticatedPrincipal {
  return 'accountId' in p;
}

export function system(reason: string): Principal {
  if (reason.trim().length < 3) throw new Error('a system scope must name its reason');
  return { kind: 'system', reason };
}

export function describePrincipal(p: Principal): string {
  switch (p.kind) {
    case 'anonymous':
      return 'anonymous';
    case 'system':
      return `system(${p.reason})`;
    case 'staff':
      return `staff:${p.role}:${p.accountId}`;
    case 'pending':
      return `pending:${p.stage}:${p.accountId}`;
    default:
      return `${p.kind}:${p.accountId}`;
  }
}
