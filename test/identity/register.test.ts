import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, testConfig, type TestService } from '../harness';
import { dataCounts, GOOD_PASSWORD, latestAuditEvents, newPatient, uniqueEmail } from '../fixtures';

let service: TestService;
beforeAll(async () => {
  service = await startTestService();
});
afterAll(async () => {
  await service?.close();
});

describe('patient registration', () => {
  it('registers, signs the patient in and audits it', async () => {
    const p = await newPatient(service, { nhsNumber: '943 476 5919', givenName: 'Ada', familyName: 'Lovelace' });
    const profile = await p.client.get('/api/profile');
    expect(profile.status).toBe(200);
    expect(profile.body).toMatchObject({ patientId: p.id, givenName: 'Ada', familyName: 'Lovelace', nhsNumber: '9434765919', email: p.email });
    expect(profile.headers['cache-control']).toBe('no-store');
    const events = await latestAuditEvents(service, 10);
    expect(events.some((e) => e.action === 'patient.register' && e.patient_id === p.id && e.actor_id === p.id)).toBe(true);
    expect(events.some((e) => e.action === 'profile.read' && e.patient_id === p.id)).toBe(true);
  });

  it('refuses an NHS number whose check digit is wrong, and stores nothing', async () => {
    const before = await dataCounts(service);
    const c = service.client();
    const res = await c.post('/api/auth/register', {
      givenName: 'A', familyName: 'B', dateOfBirth: '1990-01-01', email: uniqueEmail(), password: GOOD_PASSWORD, nhsNumber: '9434765918',
    });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('invalid_nhs_number');
    expect(await dataCounts(service)).toEqual(before);
  });

  it.each([
    ['too short', 'short-pass1', 'at least 12'],
    ['common', 'password1234', 'too common'],
    ['common padded', 'Qwertyuiop123!', 'too common'],
    ['contains the name', 'zebedee-lantern-7', 'name'],
  ])('refuses a weak password (%s) with a reason', async (_label, password, reason) => {
    const c = service.client();
    const res = await c.post('/api/auth/register', {
      givenName: 'Zebedee', familyName: 'B', dateOfBirth: '1990-01-01', email: uniqueEmail(), password,
    });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('weak_password');
    expect(res.body.error.message).toContain(reason);
  });

  it('refuses a second account for the same email (any case) without touching the first', async () => {
    const p = await newPatient(service);
    const c = service.client();
    const res = await c.post('/api/auth/register', {
      givenName: 'Imogen', familyName: 'Marsh', dateOfBirth: '1980-01-01', email: p.email.toUpperCase(), password: 'another-fine-phrase-22',
    });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('email_taken');
    const signIn = await service.client().post('/api/auth/sign-in', { email: p.email, password: p.password });
    expect(signIn.status).toBe(200);
  });

  it('refuses a date of birth in the future', async () => {
    const res = await service.client().post('/api/auth/register', {
      givenName: 'A', familyName: 'B', dateOfBirth: '2999-01-01', email: uniqueEmail(), password: GOOD_PASSWORD,
    });
    expect(res.status).toBe(400);
    expect(res.body.error.issues[0].path).toBe('dateOfBirth');
  });
});

describe('errors point at the field to fix', () => {
  it('names the field for a weak password, a bad NHS number and a taken email', async () => {
    const c = service.client();
    const weak = await c.post('/api/auth/register', { givenName: 'A', familyName: 'B', dateOfBirth: '1990-01-01', email: uniqueEmail(), password: 'password1234' });
    expect(weak.body.error.issues).toEqual([{ path: 'password', message: weak.body.error.message }]);
    const nhs = await c.post('/api/auth/register', {
      givenName: 'A', familyName: 'B', dateOfBirth: '1990-01-01', email: uniqueEmail(), password: GOOD_PASSWORD, nhsNumber: '1234567890',
    });
    expect(nhs.body.error.issues[0].path).toBe('nhsNumber');
    const p = await newPatient(service);
    const taken = await service.client().post('/api/auth/register', { givenName: 'A', familyName: 'B', dateOfBirth: '1990-01-01', email: p.email, password: GOOD_PASSWORD });
    expect(taken.body.error.issues[0].path).toBe('email');
  });
});

describe('registration reveals nobody', () => {
  it('registers someone giving an NHS number already on file without saying so, and flags it for the clinic', async () => {
    await newPatient(service, { nhsNumber: '9434765870' });
    const c = service.client({ ip: '192.0.2.77' });
    const res = await c.post('/api/auth/register', {
      givenName: 'Second', familyName: 'Claimant', dateOfBirth: '1985-05-05', email: uniqueEmail(), password: GOOD_PASSWORD, nhsNumber: '9434765870',
    });
    expect(res.status).toBe(201);
    const profile = await c.get('/api/profile');
    expect(profile.body.nhsNumber).toBeNull();
    const events = await latestAuditEvents(service, 10);
    expect(events.some((e) => e.action === 'patient.nhs_number_conflict' && e.patient_id === profile.body.patientId)).toBe(true);
  });

  it('limits registrations from one address before spending a password hash on them', async () => {
    const limited = await startTestService({ config: testConfig({ REGISTRATIONS_PER_ADDRESS: '3' }) });
    try {
      const codes: number[] = [];
      for (let i = 0; i < 4; i++) {
        const res = await limited.client({ ip: '192.0.2.10' }).post('/api/auth/register', {
          givenName: 'Many', familyName: 'Accounts', dateOfBirth: '1990-01-01', email: uniqueEmail(), password: GOOD_PASSWORD,
        });
        codes.push(res.status);
      }
      expect(codes).toEqual([201, 201, 201, 429]);
      const elsewhere = await limited.client({ ip: '192.0.2.11' }).post('/api/auth/register', {
        givenName: 'Other', familyName: 'Place', dateOfBirth: '1990-01-01', email: uniqueEmail(), password: GOOD_PASSWORD,
      });
      expect(elsewhere.status).toBe(201);
    } finally {
      await limited.close();
    }
  });
});
