import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mfaSecretBox, sealPlainMfaSecrets } from '../../src/modules/identity/mfa-secrets';
import { createStaffAccount } from '../../src/modules/identity/staff-accounts';
import { newTotpSecret, totpCodeAt } from '../../src/modules/identity/totp';
import { masterKeyId } from '../../src/modules/recordings/recording-keys';
import { startTestService, type TestService } from '../harness';
import { latestAuditEvents, newStaff, uniqueEmail } from '../fixtures';

// Authenticator secrets are sealed at rest under the master key: a copy of the database alone
// gives nobody a working second factor, and rows stored in plain text before are sealed at start.

let service: TestService;
const REQUEST = { requestId: 'test', clientIp: null, userAgent: null };
const PASSWORD = 'correct-horse-battery-staple-42';

beforeAll(async () => {
  service = await startTestService();
});
afterAll(async () => {
  await service?.close();
});

async function storedSecrets(accountId: string) {
  return service.deps.scopes.system('test: read stored secrets', REQUEST, (scope) =>
    scope.tx.selectFrom('account_credentials').select(['mfa_secret', 'mfa_pending_secret']).where('account_id', '=', accountId).executeTakeFirstOrThrow(),
  );
}

async function store(accountId: string, values: { mfa_secret?: string | null; mfa_pending_secret?: string | null }) {
  await service.deps.scopes.system('test: overwrite stored secrets', REQUEST, (scope) =>
    scope.tx.updateTable('account_credentials').set(values).where('account_id', '=', accountId).execute(),
  );
}

async function signInWithCode(email: string, secret: string) {
  const client = service.client();
  const first = await client.post('/api/auth/sign-in', { email, password: PASSWORD });
  expect(first.body.stage).toBe('mfa');
  return client.post('/api/auth/mfa/verify', { code: totpCodeAt(secret) });
}

async function enrolledStaff() {
  const email = uniqueEmail('sealed');
  const secret = newTotpSecret();
  const { id } = await service.deps.scopes.system('test fixture', REQUEST, (scope) =>
    createStaffAccount(scope, { email, displayName: 'Sealed DPO', role: 'dpo', password: PASSWORD, mfa: { secret, box: service.deps.identity.mfaSecrets } }),
  );
  return { id, email, secret };
}

describe('authenticator secrets at rest', () => {
  it('stores the active secret sealed, never in plain text, and signs in with it', async () => {
    const staff = await newStaff(service, 'clinician');
    const { mfa_secret } = await storedSecrets(staff.id);
    expect(mfa_secret).toMatch(/^v1:[0-9a-f]{16}:[A-Za-z0-9+/]+=*$/);
    expect(mfa_secret).not.toContain(staff.secret);
    expect(Buffer.from(mfa_secret!.split(':')[2]!, 'base64').toString('latin1')).not.toContain(staff.secret);
  });

  it('seals the pending secret of an enrolment and the active one it becomes', async () => {
    const email = uniqueEmail('enrol');
    const { id } = await service.deps.scopes.system('test fixture', REQUEST, (scope) =>
      createStaffAccount(scope, { email, displayName: 'New Admin', role: 'admin', password: PASSWORD }),
    );
    const client = service.client();
    expect((await client.post('/api/auth/sign-in', { email, password: PASSWORD })).body.stage).toBe('enrol');
    const start = await client.post('/api/auth/mfa/enrol');
    const secret: string = start.body.secret;
    const pending = await storedSecrets(id);
    expect(pending.mfa_pending_secret).toMatch(/^v1:/);
    expect(pending.mfa_pending_secret).not.toContain(secret);
    const confirm = await client.post('/api/auth/mfa/enrol/confirm', { code: totpCodeAt(secret) });
    expect(confirm.status, JSON.stringify(confirm.body)).toBe(200);
    const active = await storedSecrets(id);
    expect(active).toMatchObject({ mfa_pending_secret: null });
    expect(active.mfa_secret).toMatch(/^v1:/);
    expect(active.mfa_secret).not.toContain(secret);
  });

  it("does not open a sealed secret copied onto another account: that account's code is refused", async () => {
    const [a, b] = [await enrolledStaff(), await enrolledStaff()];
    await store(b.id, { mfa_secret: (await storedSecrets(a.id)).mfa_secret });
    const refused = await signInWithCode(b.email, a.secret);
    expect(refused.status).toBe(401);
    expect(refused.body.error.code).toBe('invalid_mfa_code');
    // Its own account still signs in with it.
    expect((await signInWithCode(a.email, a.secret)).status).toBe(200);
  });

  it('seals secrets left in plain text (rows from before), once; they keep working', async () => {
    const staff = await enrolledStaff();
    await store(staff.id, { mfa_secret: staff.secret });
    expect((await signInWithCode(staff.email, staff.secret)).status, 'a plain-text secret is not trusted as it is').toBe(401);
    const sealed = await sealPlainMfaSecrets(service.deps.scopes, service.deps.identity.mfaSecrets, REQUEST);
    expect(sealed).toBeGreaterThanOrEqual(1);
    const { mfa_secret } = await storedSecrets(staff.id);
    expect(mfa_secret).toMatch(/^v1:/);
    expect(mfa_secret).not.toContain(staff.secret);
    expect(await sealPlainMfaSecrets(service.deps.scopes, service.deps.identity.mfaSecrets, REQUEST)).toBe(0);
    const events = await latestAuditEvents(service, 20);
    expect(events.some((e) => e.action === 'mfa.secrets_sealed')).toBe(true);
    // The refused attempt used no time step: the same code now signs in.
    const ok = await signInWithCode(staff.email, staff.secret);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
  });
});

describe('the seal', () => {
  const key = { id: '', key: randomBytes(32) };
  key.id = masterKeyId(key.key);
  const box = mfaSecretBox(key);
  const account = randomUUID();

  it('opens only for its account and slot, under its master key, untampered', () => {
    const sealed = box.seal(account, 'active', 'JBSWY3DPEHPK3PXP');
    expect(box.open(account, 'active', sealed)).toBe('JBSWY3DPEHPK3PXP');
    expect(box.open(account.toUpperCase(), 'active', sealed)).toBe('JBSWY3DPEHPK3PXP');
    expect(box.open(randomUUID(), 'active', sealed)).toBeNull();
    expect(box.open(account, 'pending', sealed)).toBeNull();
    const other = { id: '', key: randomBytes(32) };
    other.id = masterKeyId(other.key);
    expect(mfaSecretBox(other).open(account, 'active', sealed)).toBeNull();
    const body = Buffer.from(sealed.split(':')[2]!, 'base64');
    body[20] = body[20]! ^ 1;
    expect(box.open(account, 'active', `v1:${key.id}:${body.toString('base64')}`)).toBeNull();
    expect(box.open(account, 'active', 'JBSWY3DPEHPK3PXP')).toBeNull();
    // Two seals of the same secret differ (a fresh IV each time).
    expect(box.seal(account, 'active', 'JBSWY3DPEHPK3PXP')).not.toBe(sealed);
  });
});
