import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql, type Database, type Tx, type TxPrincipal } from '../../src/db';
import { freshDatabase } from '../harness';

// Row-level security narrowed to the columns and transitions each role really makes (issue 15,
// spine item 3; src/db/migrations/0009_rls_narrowing.sql). Every forbidden write below runs as
// the service role with the offending principal set, as a bug in a service would run it, and must
// be refused: an error, or no row changed, and the row as it was. The writes the app makes are
// exercised by the whole suite; a few are repeated here beside the refusals they border on.

let db: Database;
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => {
  await db?.close();
});

const system: TxPrincipal = { kind: 'system', id: null, role: null, sessionId: null, reason: 'test: rls narrowing' };
const as = (kind: 'patient' | 'clinician' | 'pending', id: string): TxPrincipal => ({ kind, id, role: null, sessionId: randomUUID(), reason: null });

/** A raw statement (`sql\`...\``) run in the principal's transaction. */
interface Statement {
  execute(tx: Tx): Promise<{ rows: unknown[] }>;
}

/** A forbidden write: refused by the database (insufficient privilege), or changing no row. */
async function refused(who: TxPrincipal, statement: Statement) {
  let rows: unknown[];
  try {
    rows = (await db.transaction(who, (tx) => statement.execute(tx))).rows;
  } catch (err) {
    const e = err as { code?: string; message?: string };
    expect(e.code ?? e.message, String(err)).toBe('42501');
    return;
  }
  expect(rows, 'rows changed by a write that must be refused').toEqual([]);
}

/** A write the app makes: it must change exactly one row. */
async function allowed(who: TxPrincipal, statement: Statement) {
  const { rows } = await db.transaction(who, (tx) => statement.execute(tx));
  expect(rows).toHaveLength(1);
}

/** One row as system work sees it. */
async function row(table: string, id: string, key = 'id'): Promise<Record<string, unknown> | undefined> {
  const { rows } = await db.transaction(system, (tx) =>
    sql<Record<string, unknown>>`select * from ${sql.table(table)} where ${sql.ref(key)} = ${id}`.execute(tx),
  );
  return rows[0];
}

async function visible(who: TxPrincipal, table: string): Promise<number> {
  const { rows } = await db.transaction(who, (tx) => sql<{ n: number }>`select count(*)::int as n from ${sql.table(table)}`.execute(tx));
  return rows[0]!.n;
}

async function account(kind: 'patient' | 'clinician', opts: { mfa?: boolean } = {}): Promise<string> {
  const id = randomUUID();
  await db.transaction(system, async (tx) => {
    await tx
      .insertInto('accounts')
      .values({ id, kind, email: `${id}@example.test`, display_name: kind === 'patient' ? 'Pat' : 'Dr Who', mfa_enabled_at: opts.mfa ? new Date() : null })
      .execute();
    await tx.insertInto('account_credentials').values({ account_id: id, password_hash: `hash-${id}` }).execute();
    if (kind === 'patient') {
      await tx.insertInto('patient_profiles').values({ account_id: id, given_name: 'Pat', family_name: 'Ient', date_of_birth: '1990-01-01' }).execute();
    }
  });
  return id;
}

interface Visit {
  patient: string;
  clinician: string;
  appointment: string;
  consultation: string | null;
  notification: string;
}

let hour = 0;
/** An appointment (with its notification to the patient) and, unless told otherwise, its consultation with draft notes. */
async function visit(opts: { mode?: 'audio' | 'video'; consultation?: 'none' | 'waiting' | 'live' } = {}): Promise<Visit> {
  const mode = opts.mode ?? 'audio';
  const patient = await account('patient');
  const clinician = await account('clinician', { mfa: true });
  const startsAt = new Date(Date.UTC(2031, 0, 6, 9) + hour++ * 3_600_000);
  return db.transaction(system, async (tx) => {
    const { id: appointment } = await tx
      .insertInto('appointments')
      .values({ patient_id: patient, clinician_id: clinician, starts_at: startsAt, ends_at: new Date(startsAt.getTime() + 600_000), mode, reason: 'A cough' })
      .returning('id')
      .executeTakeFirstOrThrow();
    const { id: notification } = await tx
      .insertInto('notifications')
      .values({ recipient_id: patient, kind: 'appointment_booked', appointment_id: appointment })
      .returning('id')
      .executeTakeFirstOrThrow();
    let consultation: string | null = null;
    if ((opts.consultation ?? 'live') !== 'none') {
      consultation = (await tx.insertInto('consultations').values({ appointment_id: appointment, mode }).returning('id').executeTakeFirstOrThrow()).id;
      if (opts.consultation !== 'waiting') {
        await tx.updateTable('consultations').set({ status: 'live', started_at: sql<Date>`now()` }).where('id', '=', consultation).execute();
      }
      await tx.insertInto('consultation_notes').values({ consultation_id: consultation, body: 'Draft: not for the patient yet' }).execute();
    }
    return { patient, clinician, appointment, consultation, notification };
  });
}

describe("a consultation's status is the clinician's (the patient's notes policy reads it)", () => {
  it('refuses a patient ending their own consultation, and its draft notes stay hidden', async () => {
    const v = await visit();
    const me = as('patient', v.patient);
    const before = await row('consultations', v.consultation!);
    await refused(me, sql`update consultations set status = 'ended', ended_at = now() where id = ${v.consultation} returning 1`);
    await refused(me, sql`update consultations set status = 'ended', ended_at = now(), started_at = coalesce(started_at, now()) where id = ${v.consultation} returning 1`);
    expect(await row('consultations', v.consultation!)).toEqual(before);
    expect(await visible(me, 'consultation_notes')).toBe(0);
    // What the app lets the patient write: that they joined.
    await allowed(me, sql`update consultations set patient_joined_at = coalesce(patient_joined_at, now()), updated_at = now() where id = ${v.consultation} returning 1`);
  });

  it('refuses a patient creating their consultation already ended (or live, or in another mode)', async () => {
    const v = await visit({ consultation: 'none' });
    const me = as('patient', v.patient);
    await refused(
      me,
      sql`insert into consultations (appointment_id, mode, status, started_at, ended_at) values (${v.appointment}, 'audio', 'ended', now(), now()) returning 1`,
    );
    await refused(me, sql`insert into consultations (appointment_id, mode, status, started_at) values (${v.appointment}, 'audio', 'live', now()) returning 1`);
    await refused(me, sql`insert into consultations (appointment_id, mode) values (${v.appointment}, 'video') returning 1`);
    expect(await row('consultations', v.appointment, 'appointment_id')).toBeUndefined();
    // Joining creates it waiting, in the booked mode.
    await allowed(me, sql`insert into consultations (appointment_id, mode) values (${v.appointment}, 'audio') returning 1`);
  });

  it('keeps an ended consultation ended, even for its clinician, who never writes when the patient joined', async () => {
    const v = await visit();
    const gp = as('clinician', v.clinician);
    await refused(gp, sql`update consultations set patient_joined_at = now() where id = ${v.consultation} returning 1`);
    await allowed(gp, sql`update consultations set status = 'ended', ended_at = now(), updated_at = now() where id = ${v.consultation} returning 1`);
    const ended = await row('consultations', v.consultation!);
    await refused(gp, sql`update consultations set status = 'live', ended_at = null where id = ${v.consultation} returning 1`);
    await refused(gp, sql`update consultations set ended_at = now() - interval '1 day' where id = ${v.consultation} returning 1`);
    expect(await row('consultations', v.consultation!)).toEqual(ended);
  });
});

describe('the cameras go on only when both sides agreed', () => {
  it('refuses either party switching an audio consultation to video directly', async () => {
    const v = await visit({ mode: 'audio' });
    const before = await row('consultations', v.consultation!);
    await refused(as('patient', v.patient), sql`update consultations set mode = 'video' where id = ${v.consultation} returning 1`);
    await refused(as('clinician', v.clinician), sql`update consultations set mode = 'video' where id = ${v.consultation} returning 1`);
    expect(await row('consultations', v.consultation!)).toEqual(before);
    // Back to audio needs nobody's agreement.
    await allowed(as('patient', v.patient), sql`update consultations set mode = 'audio', updated_at = now() where id = ${v.consultation} returning 1`);
  });

  it('refuses a patient approving their own request to switch to video', async () => {
    const v = await visit({ mode: 'audio' });
    const me = as('patient', v.patient);
    const { id } = await db.transaction(me, (tx) =>
      tx.insertInto('mode_switch_requests').values({ consultation_id: v.consultation!, requested_by: v.patient, to_mode: 'video' }).returning('id').executeTakeFirstOrThrow(),
    );
    const pending = await row('mode_switch_requests', id);
    await refused(me, sql`update mode_switch_requests set status = 'accepted', answered_by = ${v.patient}, answered_at = now() where id = ${id} returning 1`);
    // ...nor in the clinician's name.
    await refused(me, sql`update mode_switch_requests set status = 'accepted', answered_by = ${v.clinician}, answered_at = now() where id = ${id} returning 1`);
    await refused(me, sql`update mode_switch_requests set status = 'accepted', answered_by = null, answered_at = now() where id = ${id} returning 1`);
    expect(await row('mode_switch_requests', id)).toEqual(pending);
    await refused(me, sql`update consultations set mode = 'video' where id = ${v.consultation} returning 1`);
    expect((await row('consultations', v.consultation!))!.mode).toBe('audio');
    // The clinician's answer is what turns the cameras on.
    const gp = as('clinician', v.clinician);
    await allowed(gp, sql`update mode_switch_requests set status = 'accepted', answered_by = ${v.clinician}, answered_at = now() where id = ${id} returning 1`);
    await allowed(gp, sql`update consultations set mode = 'video', updated_at = now() where id = ${v.consultation} returning 1`);
  });

  it('refuses a request made in the other side’s name, or made already answered', async () => {
    const v = await visit({ mode: 'audio' });
    const me = as('patient', v.patient);
    await refused(
      me,
      sql`insert into mode_switch_requests (consultation_id, requested_by, to_mode) values (${v.consultation}, ${v.clinician}, 'video') returning 1`,
    );
    await refused(
      me,
      sql`insert into mode_switch_requests (consultation_id, requested_by, to_mode, status, answered_by, answered_at)
          values (${v.consultation}, ${v.patient}, 'video', 'accepted', ${v.patient}, now()) returning 1`,
    );
    await refused(
      me,
      sql`insert into mode_switch_requests (consultation_id, requested_by, to_mode, status, answered_by, answered_at)
          values (${v.consultation}, ${v.clinician}, 'video', 'accepted', ${v.patient}, now()) returning 1`,
    );
    expect(await row('mode_switch_requests', v.consultation!, 'consultation_id')).toBeUndefined();
    // Switching to audio is made at once, by its sender.
    await allowed(
      me,
      sql`insert into mode_switch_requests (consultation_id, requested_by, to_mode, status, answered_by, answered_at)
          values (${v.consultation}, ${v.patient}, 'audio', 'accepted', ${v.patient}, now()) returning 1`,
    );
  });

  it('keeps an answered request answered', async () => {
    const v = await visit({ mode: 'audio' });
    const me = as('patient', v.patient);
    const gp = as('clinician', v.clinician);
    const { id } = await db.transaction(gp, (tx) =>
      tx.insertInto('mode_switch_requests').values({ consultation_id: v.consultation!, requested_by: v.clinician, to_mode: 'video' }).returning('id').executeTakeFirstOrThrow(),
    );
    await allowed(me, sql`update mode_switch_requests set status = 'declined', answered_by = ${v.patient}, answered_at = now() where id = ${id} returning 1`);
    const declined = await row('mode_switch_requests', id);
    await refused(gp, sql`update mode_switch_requests set status = 'accepted' where id = ${id} returning 1`);
    await refused(me, sql`update mode_switch_requests set status = 'accepted' where id = ${id} returning 1`);
    await refused(gp, sql`update mode_switch_requests set requested_by = ${v.patient} where id = ${id} returning 1`);
    expect(await row('mode_switch_requests', id)).toEqual(declined);
    await refused(gp, sql`update consultations set mode = 'video' where id = ${v.consultation} returning 1`);
    expect((await row('consultations', v.consultation!))!.mode).toBe('audio');
  });
});

describe('a principal still owing its second factor', () => {
  it('sees and changes no appointment, notification or patient profile, not even its own', async () => {
    const v = await visit();
    const half = as('pending', v.patient);
    expect(await visible(half, 'appointments')).toBe(0);
    expect(await visible(half, 'notifications')).toBe(0);
    expect(await visible(half, 'patient_profiles')).toBe(0);
    const before = [await row('appointments', v.appointment), await row('notifications', v.notification), await row('patient_profiles', v.patient, 'account_id')];
    await refused(
      half,
      sql`update appointments set status = 'cancelled', cancelled_by = 'patient', cancelled_at = now() where id = ${v.appointment} returning 1`,
    );
    await refused(half, sql`update notifications set read_at = now() where id = ${v.notification} returning 1`);
    await refused(half, sql`update patient_profiles set family_name = 'Changed' where account_id = ${v.patient} returning 1`);
    expect([await row('appointments', v.appointment), await row('notifications', v.notification), await row('patient_profiles', v.patient, 'account_id')]).toEqual(before);
    // The same person signed in fully sees them.
    expect(await visible(as('patient', v.patient), 'appointments')).toBe(1);
    expect(await visible(as('patient', v.patient), 'notifications')).toBe(1);
  });

  it('cannot change its password, its name, or switch two-step sign-in off, and can still finish signing in', async () => {
    const id = await account('patient', { mfa: true });
    const half = as('pending', id);
    const before = [await row('accounts', id), await row('account_credentials', id, 'account_id')];
    await refused(half, sql`update account_credentials set password_hash = 'chosen-by-whoever-knew-the-password' where account_id = ${id} returning 1`);
    await refused(half, sql`update accounts set mfa_enabled_at = null where id = ${id} returning 1`);
    await refused(half, sql`update accounts set display_name = 'Someone else' where id = ${id} returning 1`);
    expect([await row('accounts', id), await row('account_credentials', id, 'account_id')]).toEqual(before);
    // Finishing sign-in: the TOTP step is claimed, a full session starts, the half one is revoked.
    await allowed(half, sql`update account_credentials set mfa_last_step = 1 where account_id = ${id} and (mfa_last_step is null or mfa_last_step < 1) returning 1`);
    await allowed(
      half,
      sql`insert into sessions (token_hash, account_id, stage, last_seen_at, absolute_expires_at)
          values (${randomBytes(32)}, ${id}, 'full', now(), now() + interval '1 hour') returning 1`,
    );
    await allowed(half, sql`update sessions set revoked_at = now(), revoked_reason = 'mfa_completed' where account_id = ${id} returning 1`);
  });
});

describe('accounts', () => {
  it('refuses anyone making themselves staff, after registration or at it', async () => {
    const id = await account('patient');
    const before = await row('accounts', id);
    await refused(as('patient', id), sql`update accounts set kind = 'staff', staff_role = 'dpo' where id = ${id} returning 1`);
    await refused(as('patient', id), sql`update accounts set email = 'someone.else@example.test' where id = ${id} returning 1`);
    expect(await row('accounts', id)).toEqual(before);

    const fresh = randomUUID();
    await refused(
      as('patient', fresh),
      sql`insert into accounts (id, kind, staff_role, email, display_name) values (${fresh}, 'staff', 'dpo', ${`${fresh}@example.test`}, 'Dee') returning 1`,
    );
    expect(await row('accounts', fresh)).toBeUndefined();
    // Registration: the new patient, as a patient.
    await allowed(as('patient', fresh), sql`insert into accounts (id, kind, email, display_name) values (${fresh}, 'patient', ${`${fresh}@example.test`}, 'Dee') returning 1`);
    // A patient's name follows their profile.
    await allowed(as('patient', id), sql`update accounts set display_name = 'Patricia' where id = ${id} returning 1`);
  });
});

describe('notifications', () => {
  it('refuses a recipient re-addressing a notification, or writing one about someone else’s appointment', async () => {
    const v = await visit({ consultation: 'none' });
    const other = await visit({ consultation: 'none' });
    const me = as('patient', v.patient);
    const before = await row('notifications', v.notification);
    await refused(me, sql`update notifications set recipient_id = ${v.clinician} where id = ${v.notification} returning 1`);
    await refused(me, sql`update notifications set appointment_id = ${other.appointment} where id = ${v.notification} returning 1`);
    expect(await row('notifications', v.notification)).toEqual(before);
    await refused(
      me,
      sql`insert into notifications (recipient_id, kind, appointment_id) values (${v.patient}, 'appointment_cancelled', ${other.appointment}) returning 1`,
    );
    expect(await visible(as('patient', v.patient), 'notifications')).toBe(1);
    // Marking it read is what the recipient does.
    await allowed(me, sql`update notifications set read_at = now() where id = ${v.notification} returning 1`);
  });
});

describe('appointments', () => {
  it('lets a patient cancel, in their own name, once, and do nothing else', async () => {
    const v = await visit({ consultation: 'none' });
    const me = as('patient', v.patient);
    const booked = await row('appointments', v.appointment);
    await refused(me, sql`update appointments set status = 'completed' where id = ${v.appointment} returning 1`);
    await refused(me, sql`update appointments set status = 'no_show' where id = ${v.appointment} returning 1`);
    await refused(
      me,
      sql`update appointments set status = 'cancelled', cancelled_by = 'clinician', cancelled_at = now() where id = ${v.appointment} returning 1`,
    );
    await refused(me, sql`update appointments set mode = 'video', reason = 'Something else' where id = ${v.appointment} returning 1`);
    expect(await row('appointments', v.appointment)).toEqual(booked);
    await allowed(
      me,
      sql`update appointments set status = 'cancelled', cancelled_by = 'patient', cancelled_at = now(), updated_at = now() where id = ${v.appointment} returning 1`,
    );
    const cancelled = await row('appointments', v.appointment);
    await refused(me, sql`update appointments set status = 'booked', cancelled_by = null, cancelled_at = null where id = ${v.appointment} returning 1`);
    await refused(as('clinician', v.clinician), sql`update appointments set cancelled_by = 'clinician' where id = ${v.appointment} returning 1`);
    expect(await row('appointments', v.appointment)).toEqual(cancelled);
  });

  it('lets a clinician record how it went, but not rewrite what was booked or book on a patient’s behalf', async () => {
    const v = await visit({ consultation: 'none' });
    const gp = as('clinician', v.clinician);
    const before = await row('appointments', v.appointment);
    await refused(gp, sql`update appointments set mode = 'video' where id = ${v.appointment} returning 1`);
    await refused(
      gp,
      sql`update appointments set status = 'cancelled', cancelled_by = 'patient', cancelled_at = now() where id = ${v.appointment} returning 1`,
    );
    expect(await row('appointments', v.appointment)).toEqual(before);
    await allowed(gp, sql`update appointments set status = 'completed', updated_at = now() where id = ${v.appointment} returning 1`);
    await allowed(gp, sql`update appointments set status = 'no_show', updated_at = now() where id = ${v.appointment} returning 1`);
    // A patient's booking replaces only their own appointment.
    const other = await visit({ consultation: 'none' });
    await refused(
      as('patient', other.patient),
      sql`insert into appointments (patient_id, clinician_id, starts_at, ends_at, mode, reason, rescheduled_from)
          values (${other.patient}, ${other.clinician}, '2032-01-01T09:00:00Z', '2032-01-01T09:10:00Z', 'audio', 'x', ${v.appointment}) returning 1`,
    );
    await refused(
      as('patient', other.patient),
      sql`insert into appointments (patient_id, clinician_id, starts_at, ends_at, mode, reason, status)
          values (${other.patient}, ${other.clinician}, '2032-01-02T09:00:00Z', '2032-01-02T09:10:00Z', 'audio', 'x', 'completed') returning 1`,
    );
  });
});

describe('sessions and recovery codes', () => {
  it('keeps a revoked session revoked and its expiry where it was', async () => {
    const id = await account('patient');
    const { id: session } = await db.transaction(system, (tx) =>
      tx
        .insertInto('sessions')
        .values({ token_hash: randomBytes(32), account_id: id, stage: 'full', last_seen_at: new Date(), absolute_expires_at: new Date(Date.now() + 3_600_000), revoked_at: new Date(), revoked_reason: 'signed_out' })
        .returning('id')
        .executeTakeFirstOrThrow(),
    );
    const before = await row('sessions', session);
    for (const who of [as('patient', id), as('pending', id)]) {
      await refused(who, sql`update sessions set revoked_at = null, revoked_reason = null where id = ${session} returning 1`);
      await refused(who, sql`update sessions set absolute_expires_at = now() + interval '1 year' where id = ${session} returning 1`);
      await refused(who, sql`update sessions set stage = 'full', account_id = ${id} where id = ${session} returning 1`);
    }
    expect(await row('sessions', session)).toEqual(before);
  });

  it('keeps a used recovery code used', async () => {
    const id = await account('patient', { mfa: true });
    const { id: code } = await db.transaction(system, (tx) =>
      tx.insertInto('mfa_recovery_codes').values({ account_id: id, code_hash: 'used-code', used_at: new Date() }).returning('id').executeTakeFirstOrThrow(),
    );
    const before = await row('mfa_recovery_codes', code);
    await refused(as('pending', id), sql`update mfa_recovery_codes set used_at = null where id = ${code} returning 1`);
    await refused(as('pending', id), sql`update mfa_recovery_codes set code_hash = 'another' where id = ${code} returning 1`);
    expect(await row('mfa_recovery_codes', code)).toEqual(before);
  });
});
