import { describe, expect, it } from 'vitest';
import { classify, disallowed, verifyWrites, type AppointmentRow, type Patient, type RequestRecord, type WriteRecord } from './load';

// The fault suite's judge must itself be right: what it calls a lost or phantom write.
const patients: Patient[] = [{ n: 0, id: 'p0', email: 'x', cookie: '', csrf: '', held: new Map() }];
const slot = (i: number) => ({ clinicianId: 'gp', startsAt: new Date(Date.UTC(2030, 0, 1, 9, i * 10)).toISOString() });
let k = 0;
function book(i: number, first: { status: number; code?: string }, extra: Partial<WriteRecord> = {}): WriteRecord {
  const outcome = classify(first.status, first.code);
  const committed = outcome === 'acknowledged' ? true : outcome === 'unknown' ? undefined : false;
  return { patient: 0, kind: 'book', key: `k${k++}`, request: { path: '/api/appointments', body: {} }, slot: slot(i), startedAt: 0, first, outcome, committed, ...(committed ? { appointmentId: `a${i}` } : {}), ...extra };
}
function cancel(i: number, first: { status: number; code?: string }, committed: boolean | undefined): WriteRecord {
  return { patient: 0, kind: 'cancel', key: `k${k++}`, request: { path: '', body: {} }, appointmentId: `a${i}`, startedAt: 0, first, outcome: classify(first.status, first.code), committed };
}
const row = (i: number, status = 'booked'): AppointmentRow => ({ id: `a${i}`, patient_id: 'p0', clinician_id: 'gp', starts_at: new Date(slot(i).startsAt), status });

describe('fault suite: classifying and checking writes', () => {
  it('classifies answers as the issue does', () => {
    expect(classify(201, undefined)).toBe('acknowledged');
    expect(classify(409, 'slot_taken')).toBe('refused');
    expect(classify(503, 'deadline_exceeded')).toBe('abandoned');
    expect(classify(503, 'outcome_unknown')).toBe('unknown');
    expect(classify(500, 'internal')).toBe('unknown');
    expect(classify(0, undefined)).toBe('unknown');
  });

  it('allows 2xx, expected refusals and 503 with a stable code and Retry-After only', () => {
    const r = (o: Partial<RequestRecord>): RequestRecord => ({ patient: 0, kind: 'book', attempt: 0, status: 200, startedAt: 0, endedAt: 0, latencyMs: 0, ...o });
    expect(disallowed(r({ status: 201 }))).toBeUndefined();
    expect(disallowed(r({ status: 409, code: 'slot_taken' }))).toBeUndefined();
    expect(disallowed(r({ status: 503, code: 'database_unavailable', retryAfter: '1' }))).toBeUndefined();
    expect(disallowed(r({ status: 503, code: 'database_unavailable' }))).toMatch(/Retry-After/);
    expect(disallowed(r({ status: 503, code: 'unavailable', retryAfter: '1' }))).toMatch(/stable code/);
    expect(disallowed(r({ status: 500, code: 'internal' }))).toBe('500 internal');
    expect(disallowed(r({ status: 401, code: 'unauthenticated' }))).toBe('401 unauthenticated');
    expect(disallowed(r({ kind: 'list', status: 409, code: 'slot_taken' }))).toBe('409 slot_taken');
    expect(disallowed(r({ status: 0, error: 'ECONNRESET' }))).toMatch(/no answer/);
  });

  it('passes when the database holds exactly what the patient was told', () => {
    const writes = [book(1, { status: 201 }), book(2, { status: 201 }), cancel(2, { status: 200 }, true), book(3, { status: 503, code: 'deadline_exceeded' })];
    expect(verifyWrites(patients, writes, [row(1), row(2, 'cancelled')], new Set([writes[0]!.key, writes[1]!.key, writes[2]!.key]))).toEqual([]);
  });

  it('finds a lost acknowledged booking, a phantom one, a lost cancel and an abandoned key that stayed', () => {
    const writes = [book(1, { status: 201 }), book(2, { status: 503, code: 'database_unavailable' }), book(3, { status: 201 }), cancel(3, { status: 200 }, true)];
    const problems = verifyWrites(patients, writes, [row(2), row(3)], new Set([writes[1]!.key]));
    expect(problems.join('\n')).toMatch(/appointment a1 is missing/);
    expect(problems.join('\n')).toMatch(/appointment a2 \(booked\) exists but no booking of it was acknowledged/);
    expect(problems.join('\n')).toMatch(/a3: its cancel was acknowledged but it is booked/);
    expect(problems.join('\n')).toMatch(/was abandoned .* but its key is in idempotency_keys/);
  });

  it('excuses a booking nobody could settle, and finds a cancel that happened though it was abandoned', () => {
    const writes = [book(4, { status: 503, code: 'outcome_unknown' }), book(5, { status: 201 }), cancel(5, { status: 503, code: 'deadline_exceeded' }, false)];
    expect(verifyWrites(patients, writes, [{ ...row(4), id: 'x' }, row(5, 'cancelled')])).toEqual([
      expect.stringMatching(/a5 is cancelled but no cancel of it committed/),
    ]);
  });
});
