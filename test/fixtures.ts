import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import { createStaffAccount, type StaffRoleName } from '../src/modules/identity/staff-accounts';
import { newTotpSecret, totpCodeAt } from '../src/modules/identity/totp';
import type { TestClient, TestService } from './harness';

let counter = 0;
export function uniqueEmail(prefix = 'patient'): string {
  return `${prefix}.${Date.now().toString(36)}.${(counter++).toString(36)}.${randomBytes(3).toString('hex')}@example.test`;
}

export const GOOD_PASSWORD = 'quiet-river-stone-lamp-91';

export interface PatientHandle {
  client: TestClient;
  id: string;
  email: string;
  password: string;
}

/** Registers a patient through the API, the way a person would, and keeps them signed in. */
let addresses = 0;
/** A distinct documentation-range address per test patient: registration is limited per address. */
function nextAddress(): string {
  addresses++;
  return `198.18.${Math.floor(addresses / 250) % 250}.${(addresses % 250) + 1}`;
}

export async function newPatient(service: TestService, overrides: Record<string, unknown> = {}): Promise<PatientHandle> {
  const client = service.client({ ip: nextAddress() });
  const email = (overrides.email as string | undefined) ?? uniqueEmail();
  const res = await client.post('/api/auth/register', {
    givenName: 'Test',
    familyName: 'Patient',
    dateOfBirth: '1990-05-17',
    email,
    password: GOOD_PASSWORD,
    ...overrides,
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  const me = await client.get('/api/session');
  return { client, id: me.body.account.id, email, password: GOOD_PASSWORD };
}

export interface StaffHandle {
  client: TestClient;
  id: string;
  email: string;
  password: string;
  secret: string;
}

/** Creates a staff account (operator path) already enrolled in TOTP, and signs it in fully. */
export async function newStaff(service: TestService, role: StaffRoleName): Promise<StaffHandle> {
  const email = uniqueEmail(role);
  const secret = newTotpSecret();
  const password = GOOD_PASSWORD;
  const { id } = await service.deps.scopes.system('test fixture', { requestId: 'test', clientIp: null, userAgent: null }, (scope) =>
    createStaffAccount(scope, { email, displayName: `Test ${role}`, role, password, mfa: { secret, box: service.deps.identity.mfaSecrets } }),
  );
  const client = service.client();
  const signIn = await client.post('/api/auth/sign-in', { email, password });
  expect(signIn.body.stage).toBe('mfa');
  const verify = await client.post('/api/auth/mfa/verify', { code: totpCodeAt(secret) });
  expect(verify.status, JSON.stringify(verify.body)).toBe(200);
  return { client, id, email, password, secret };
}

/** Counts rows in every data table (as the owner): "nothing was written" means these stay put. */
const COUNTED_TABLES = [
  'accounts',
  'account_credentials',
  'patient_profiles',
  'mfa_recovery_codes',
  'sessions',
  'audit_events',
  'availability_rules',
  'availability_exceptions',
  'appointments',
  'notifications',
  'outbox',
  'consultations',
  'mode_switch_requests',
  'recording_consents',
  'recordings',
  'recording_chunks',
  'consultation_notes',
  'features',
] as const;
export type DataCounts = Record<(typeof COUNTED_TABLES)[number], number>;

export async function dataCounts(service: TestService): Promise<DataCounts> {
  const tables = COUNTED_TABLES;
  const out = {} as DataCounts;
  await service.db.transaction({ kind: 'system', id: null, role: null, sessionId: null, reason: 'test: count rows' }, async (tx) => {
    for (const t of tables) {
      const r = await tx.selectFrom(t).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      out[t] = Number(r.n);
    }
  });
  return out;
}

/** The newest audit events (system view), newest first. */
export async function latestAuditEvents(service: TestService, n = 5) {
  return service.db.transaction({ kind: 'system', id: null, role: null, sessionId: null, reason: 'test: read audit' }, (tx) =>
    tx.selectFrom('audit_events').selectAll().orderBy('seq', 'desc').limit(n).execute(),
  );
}
