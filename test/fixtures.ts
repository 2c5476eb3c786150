import { randomBytes, randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import type { Principal } from '../src/access/principal';
import { listFeatures, setFeature, type FeatureName } from '../src/modules/features/features';
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

/**
 * Detection has judged every audit event written so far: a test that causes a violation on
 * purpose waits for its consequences (an alert, a feature switched off) this way.
 */
export async function detectNow(service: Pick<TestService, 'guard'>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const r = await service.guard.detector.pass();
    if (!r.busy && r.judged === 0) return;
    if (r.busy) await new Promise((res) => setTimeout(res, 5));
  }
  throw new Error('detection did not catch up');
}

const testDpos = new WeakMap<object, Promise<Principal>>();

/**
 * After a test that caused a containment signal on purpose: detection catches up, then a DPO
 * switches back on every feature it switched off (only the DPO may), and this process sees it.
 * Returns the features that had been switched off automatically.
 */
export async function restoreKilledFeatures(service: TestService): Promise<string[]> {
  await detectNow(service);
  const request = { requestId: 'test', clientIp: null, userAgent: null };
  let dpo = testDpos.get(service.deps);
  if (!dpo) {
    dpo = service.deps.scopes
      .system('test fixture', request, (scope) =>
        createStaffAccount(scope, { email: uniqueEmail('dpo'), displayName: 'Test DPO', role: 'dpo', password: GOOD_PASSWORD, mfa: { secret: newTotpSecret(), box: service.deps.identity.mfaSecrets } }),
      )
      .then(({ id }): Principal => ({ kind: 'staff', role: 'dpo', accountId: id, sessionId: randomUUID() }));
    testDpos.set(service.deps, dpo);
  }
  const principal = await dpo;
  const killed = await service.deps.scopes.run(principal, request, async (scope) => {
    const off = (await listFeatures(scope)).filter((f) => !f.enabled && f.disabledByKind === 'automatic');
    for (const f of off) await setFeature(scope, f.name, true, 'test: the violation was on purpose');
    return off.map((f) => f.name);
  });
  for (const name of killed) await expect.poll(() => service.deps.features.isEnabledNow(name as FeatureName), { timeout: 2_000, interval: 5 }).toBe(true);
  return killed;
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
