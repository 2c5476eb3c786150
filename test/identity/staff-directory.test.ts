import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../harness';
import { dataCounts, latestAuditEvents, newPatient, newStaff, type StaffHandle } from '../fixtures';

// The staff directory shows each role what it needs: names and roles to everyone on the staff;
// email, two-step verification and account age only to those who look after accounts.

let service: TestService;
let gp: StaffHandle;
let admin: StaffHandle;
let dpo: StaffHandle;

beforeAll(async () => {
  service = await startTestService();
  [gp, admin, dpo] = await Promise.all([newStaff(service, 'clinician'), newStaff(service, 'admin'), newStaff(service, 'dpo')]);
});
afterAll(async () => {
  await service?.close();
});

describe('the staff directory', () => {
  it('shows a clinician names and roles only: no colleague email, two-step state or account age', async () => {
    const res = await gp.client.get('/api/staff');
    expect(res.status).toBe(200);
    const staff = res.body.staff as Record<string, unknown>[];
    expect(staff.map((s) => s.id)).toEqual(expect.arrayContaining([gp.id, admin.id, dpo.id]));
    for (const member of staff) expect(Object.keys(member).sort()).toEqual(['displayName', 'id', 'kind', 'role']);
    const text = JSON.stringify(res.body);
    for (const colleague of [admin, dpo]) expect(text).not.toContain(colleague.email);
    const events = await latestAuditEvents(service, 10);
    const details = events.find((e) => e.action === 'staff.list' && e.actor_id === gp.id)?.details;
    expect(typeof details === 'string' ? JSON.parse(details) : details).toMatchObject({ detailed: false });
  });

  it.each([
    ['practice manager', () => admin],
    ['DPO', () => dpo],
  ])('shows the %s every colleague with email, two-step state and account age', async (_who, caller) => {
    const res = await caller().client.get('/api/staff');
    expect(res.status).toBe(200);
    const listed = (res.body.staff as { id: string; email?: string; mfaEnabled?: boolean; createdAt?: string }[]).find((s) => s.id === gp.id);
    expect(listed).toMatchObject({ email: gp.email, mfaEnabled: true });
    expect(Date.parse(listed!.createdAt!)).toBeGreaterThan(0);
  });

  it('answers 404 to a patient and writes nothing but the denial', async () => {
    const patient = await newPatient(service);
    const before = await dataCounts(service);
    const res = await patient.client.get('/api/staff');
    expect(res.status).toBe(404);
    expect(JSON.stringify(res.body)).not.toContain(gp.email);
    expect({ ...(await dataCounts(service)), audit_events: 0 }).toEqual({ ...before, audit_events: 0 });
  });
});
