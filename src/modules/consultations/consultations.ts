import type { Scope } from '../../access/scope';
import type { Consultation as ConsultationView } from '../../contracts/consultations';
import { sql } from '../../db';
import { AppError, notFound } from '../../errors';
import { appointmentsInScope } from '../appointments/appointment-access';
import { consultationsInScope, partyOf, requireClinician, requirePatient } from './consultation-access';
import type { PartyRole, SignallingHub } from './signalling-hub';

export interface ConsultationDeps {
  hub: SignallingHub;
  /** ICE servers for one caller (TURN credentials are per caller and expire). */
  iceServersFor(accountId: string): ConsultationView['rtc']['iceServers'];
  /** How long before its start a consultation may be joined, and how long after its end. */
  joinWindow: { earlyMs: number; lateMs: number };
}

export type ConsultationState = ConsultationView & { patientId: string };
type Mode = 'audio' | 'video';
type ConsentState = ConsultationView['consent']['audio'];

function iso(v: Date | string): string {
  return (v instanceof Date ? v : new Date(v)).toISOString();
}
function isoOrNull(v: Date | string | null): string | null {
  return v === null ? null : iso(v);
}

/** The consultation as its caller sees it; `patientId` is for the egress check and is not sent. */
export async function readConsultation(scope: Scope, deps: ConsultationDeps, id: string, opts: { audit?: boolean } = {}): Promise<ConsultationState> {
  const me = partyOf(scope);
  const row = await consultationsInScope(scope)
    .innerJoin('appointments as a', 'a.id', 'consultations.appointment_id')
    .innerJoin('accounts as c', 'c.id', 'consultations.clinician_id')
    .leftJoin('patient_profiles as p', 'p.account_id', 'consultations.patient_id')
    .select([
      'consultations.id',
      'consultations.appointment_id',
      'consultations.patient_id',
      'consultations.clinician_id',
      'consultations.booked_mode',
      'consultations.mode',
      'consultations.status',
      'consultations.started_at',
      'consultations.ended_at',
      'a.starts_at',
      'a.ends_at',
      'c.display_name as clinician_name',
      'p.given_name',
      'p.family_name',
    ])
    .where('consultations.id', '=', id)
    .executeTakeFirst();
  if (!row) throw notFound();

  const pending = await scope.tx
    .selectFrom('mode_switch_requests')
    .select(['id', 'to_mode', 'requested_by', 'created_at'])
    .where('consultation_id', '=', id)
    .where('status', '=', 'pending')
    .executeTakeFirst();
  const answered = await scope.tx
    .selectFrom('mode_switch_requests')
    .select(['id', 'to_mode', 'requested_by', 'status', 'answered_at'])
    .where('consultation_id', '=', id)
    .where('status', '<>', 'pending')
    .orderBy('answered_at', 'desc')
    .orderBy('created_at', 'desc')
    .limit(1)
    .executeTakeFirst();
  const consent = await consentStates(scope, id);
  const recording = await scope.tx
    .selectFrom('recordings')
    .select(['id', 'status', 'started_at', 'video_consented'])
    .where('consultation_id', '=', id)
    .orderBy('started_at', 'desc')
    .limit(1)
    .executeTakeFirst();

  if (opts.audit !== false) {
    scope.audit({ action: 'consultation.read', objectType: 'consultation', objectId: id, patientId: row.patient_id });
  }
  return {
    id: row.id,
    appointmentId: row.appointment_id,
    patientId: row.patient_id,
    you: me.role,
    clinician: { id: row.clinician_id, displayName: row.clinician_name },
    patient: { displayName: row.given_name ? `${row.given_name} ${row.family_name}` : 'Patient' },
    startsAt: iso(row.starts_at),
    endsAt: iso(row.ends_at),
    bookedMode: row.booked_mode,
    mode: row.mode,
    status: row.status,
    startedAt: isoOrNull(row.started_at),
    endedAt: isoOrNull(row.ended_at),
    pendingModeRequest: pending
      ? {
          id: pending.id,
          toMode: pending.to_mode,
          requestedBy: pending.requested_by === row.patient_id ? 'patient' : 'clinician',
          createdAt: iso(pending.created_at),
        }
      : null,
    lastModeAnswer:
      answered && answered.answered_at
        ? {
            id: answered.id,
            toMode: answered.to_mode,
            requestedBy: answered.requested_by === row.patient_id ? 'patient' : 'clinician',
            status: answered.status as 'accepted' | 'declined' | 'withdrawn',
            answeredAt: iso(answered.answered_at),
          }
        : null,
    consent,
    recording: recording
      ? { id: recording.id, status: recording.status, startedAt: iso(recording.started_at), videoConsented: recording.video_consented }
      : null,
    presence: deps.hub.presence(id),
    rtc: { iceServers: deps.iceServersFor(me.accountId) },
  };
}

/** The latest decision for each medium: consent to record audio is not consent to record video. */
export async function consentStates(scope: Scope, consultationId: string): Promise<{ audio: ConsentState; video: ConsentState }> {
  const rows = await scope.tx
    .selectFrom('recording_consents')
    .select(['media', 'decision'])
    .distinctOn('media')
    .where('consultation_id', '=', consultationId)
    .orderBy('media')
    .orderBy('created_at', 'desc')
    .execute();
  const out = { audio: 'none' as ConsentState, video: 'none' as ConsentState };
  for (const r of rows) out[r.media] = r.decision;
  return out;
}

/** A span of time (ms since the epoch) in which the patient's consent to record one medium was in force. */
export interface ConsentWindow {
  from: number;
  /** Infinity while it still is. */
  to: number;
}

/**
 * When the patient's consent to record `media` was in force: from each grant to the next decision
 * of any other kind. The latest decision is the one in force, as in consentStates.
 */
export async function consentWindows(scope: Scope, consultationId: string, media: Mode): Promise<ConsentWindow[]> {
  const rows = await scope.tx
    .selectFrom('recording_consents')
    .select(['decision', 'created_at'])
    .where('consultation_id', '=', consultationId)
    .where('media', '=', media)
    .orderBy('created_at')
    .execute();
  const out: ConsentWindow[] = [];
  let open: number | null = null;
  for (const r of rows) {
    const at = new Date(r.created_at).getTime();
    if (r.decision === 'granted') open ??= at;
    else if (open !== null) {
      out.push({ from: open, to: at });
      open = null;
    }
  }
  if (open !== null) out.push({ from: open, to: Infinity });
  return out;
}

/** The consultation row, locked for a state change; 404 outside the scope. */
async function lockConsultation(scope: Scope, id: string) {
  const row = await consultationsInScope(scope)
    .select(['id', 'patient_id', 'clinician_id', 'status', 'mode', 'appointment_id'])
    .where('consultations.id', '=', id)
    .forUpdate()
    .executeTakeFirst();
  if (!row) throw notFound();
  return row;
}

function requireLive(row: { status: string }) {
  if (row.status === 'ended') throw new AppError('consultation_ended', 'This consultation has ended.');
  if (row.status !== 'live') throw new AppError('consultation_not_open', 'The clinician has not started this consultation yet.');
}

function changed(scope: Scope, deps: ConsultationDeps, id: string) {
  scope.afterCommit(() => deps.hub.changed(id));
}

/**
 * The patient joins the waiting room of their appointment; the clinician opens it. The
 * consultation is created on first join, its parties copied from the appointment by the database.
 */
export async function joinConsultation(scope: Scope, deps: ConsultationDeps, appointmentId: string, now = new Date()): Promise<ConsultationState> {
  const me = partyOf(scope);
  const appointment = await appointmentsInScope(scope)
    .select(['appointments.id', 'appointments.patient_id', 'appointments.status', 'appointments.mode', 'appointments.starts_at', 'appointments.ends_at'])
    .where('appointments.id', '=', appointmentId)
    .executeTakeFirst();
  if (!appointment) throw notFound();

  const existing = await consultationsInScope(scope)
    .select(['consultations.id', 'consultations.status'])
    .where('consultations.appointment_id', '=', appointmentId)
    .executeTakeFirst();
  if (existing?.status === 'ended') throw new AppError('consultation_ended', 'This consultation has ended.');
  if (!existing) {
    if (appointment.status !== 'booked') {
      throw new AppError('consultation_not_open', 'This appointment is not booked any more, so there is no consultation to join.');
    }
    const opensAt = new Date(new Date(appointment.starts_at).getTime() - deps.joinWindow.earlyMs);
    const closesAt = new Date(new Date(appointment.ends_at).getTime() + deps.joinWindow.lateMs);
    if (now < opensAt) {
      throw new AppError('consultation_not_open', 'It is too early to join. The waiting room opens shortly before the appointment.', {
        details: { opensAt: opensAt.toISOString() },
      });
    }
    if (now > closesAt) throw new AppError('consultation_not_open', 'This appointment has passed.');
  }

  const id =
    existing?.id ??
    (
      await scope.tx
        .insertInto('consultations')
        .values({ appointment_id: appointmentId, mode: appointment.mode })
        .onConflict((oc) => oc.column('appointment_id').doNothing())
        .returning('id')
        .executeTakeFirst()
    )?.id ??
    // Both parties joined at the same moment: the other one created it.
    (await consultationsInScope(scope).select('consultations.id').where('consultations.appointment_id', '=', appointmentId).executeTakeFirstOrThrow()).id;

  if (me.role === 'patient') {
    await scope.tx
      .updateTable('consultations')
      .set({ patient_joined_at: sql<Date>`coalesce(patient_joined_at, now())`, updated_at: sql<Date>`now()` })
      .where('id', '=', id)
      .execute();
  }
  scope.audit({ action: 'consultation.join', objectType: 'consultation', objectId: id, patientId: appointment.patient_id, details: { as: me.role } });
  changed(scope, deps, id);
  return readConsultation(scope, deps, id, { audit: false });
}

/** The clinician starts the consultation (the patient may be waiting, or join later). */
export async function startConsultation(scope: Scope, deps: ConsultationDeps, id: string): Promise<ConsultationState> {
  requireClinician(scope);
  const row = await lockConsultation(scope, id);
  if (row.status === 'ended') throw new AppError('consultation_ended', 'This consultation has ended.');
  if (row.status === 'waiting') {
    await scope.tx
      .updateTable('consultations')
      .set({ status: 'live', started_at: sql<Date>`now()`, updated_at: sql<Date>`now()` })
      .where('id', '=', id)
      .execute();
    scope.audit({ action: 'consultation.start', objectType: 'consultation', objectId: id, patientId: row.patient_id });
    changed(scope, deps, id);
  }
  return readConsultation(scope, deps, id, { audit: false });
}

/**
 * The clinician ends the consultation: the appointment is completed, a pending switch is
 * withdrawn and every connection to the call is closed. A recording still uploading gets a grace
 * period for its last chunks (see recordings' sweep).
 */
export async function endConsultation(scope: Scope, deps: ConsultationDeps, id: string): Promise<ConsultationState> {
  requireClinician(scope);
  const row = await lockConsultation(scope, id);
  if (row.status !== 'ended') {
    await scope.tx
      .updateTable('consultations')
      .set({
        status: 'ended',
        started_at: sql<Date>`coalesce(started_at, now())`,
        ended_at: sql<Date>`now()`,
        updated_at: sql<Date>`now()`,
      })
      .where('id', '=', id)
      .execute();
    await scope.tx
      .updateTable('appointments')
      .set({ status: 'completed', updated_at: sql<Date>`now()` })
      .where('id', '=', row.appointment_id)
      .where('status', '=', 'booked')
      .execute();
    await scope.tx
      .updateTable('mode_switch_requests')
      .set({ status: 'withdrawn', answered_at: sql<Date>`now()` })
      .where('consultation_id', '=', id)
      .where('status', '=', 'pending')
      .execute();
    scope.audit({ action: 'consultation.end', objectType: 'consultation', objectId: id, patientId: row.patient_id });
    scope.afterCommit(() => deps.hub.end(id));
  }
  return readConsultation(scope, deps, id, { audit: false });
}

/**
 * Either side asks to switch. Back to audio happens at once (turning cameras off needs nobody's
 * agreement); to video waits for the other side's answer, so the patient has always agreed
 * before their camera turns on.
 */
export async function requestModeSwitch(scope: Scope, deps: ConsultationDeps, id: string, mode: Mode): Promise<ConsultationState> {
  const me = partyOf(scope);
  const row = await lockConsultation(scope, id);
  requireLive(row);
  const pending = await scope.tx
    .selectFrom('mode_switch_requests')
    .select(['id', 'requested_by', 'to_mode'])
    .where('consultation_id', '=', id)
    .where('status', '=', 'pending')
    .executeTakeFirst();

  if (mode === 'audio') {
    if (pending) {
      await scope.tx
        .updateTable('mode_switch_requests')
        .set({ status: 'withdrawn', answered_by: me.accountId, answered_at: sql<Date>`now()` })
        .where('id', '=', pending.id)
        .execute();
    }
    if (row.mode !== 'audio') {
      await scope.tx
        .insertInto('mode_switch_requests')
        .values({ consultation_id: id, requested_by: me.accountId, to_mode: 'audio', status: 'accepted', answered_by: me.accountId, answered_at: sql<Date>`now()` })
        .execute();
      await scope.tx.updateTable('consultations').set({ mode: 'audio', updated_at: sql<Date>`now()` }).where('id', '=', id).execute();
      scope.audit({ action: 'consultation.mode_change', objectType: 'consultation', objectId: id, patientId: row.patient_id, details: { to: 'audio', by: me.role } });
    }
    changed(scope, deps, id);
    return readConsultation(scope, deps, id, { audit: false });
  }

  if (row.mode === 'video') return readConsultation(scope, deps, id, { audit: false });
  if (pending) {
    if (pending.requested_by === me.accountId && pending.to_mode === 'video') return readConsultation(scope, deps, id, { audit: false });
    throw new AppError('mode_request_pending', 'The other side has already asked to switch. Answer their request first.');
  }
  const created = await scope.tx
    .insertInto('mode_switch_requests')
    .values({ consultation_id: id, requested_by: me.accountId, to_mode: 'video' })
    .returning('id')
    .executeTakeFirstOrThrow();
  scope.audit({
    action: 'consultation.mode_request',
    objectType: 'mode_switch_request',
    objectId: created.id,
    patientId: row.patient_id,
    details: { consultationId: id, to: 'video', by: me.role },
  });
  changed(scope, deps, id);
  return readConsultation(scope, deps, id, { audit: false });
}

/** The other side answers a request to switch to video; the one who asked may withdraw it. */
export async function answerModeSwitch(scope: Scope, deps: ConsultationDeps, id: string, requestId: string, accept: boolean): Promise<ConsultationState> {
  const me = partyOf(scope);
  const row = await lockConsultation(scope, id);
  requireLive(row);
  const request = await scope.tx
    .selectFrom('mode_switch_requests')
    .select(['id', 'requested_by', 'to_mode'])
    .where('id', '=', requestId)
    .where('consultation_id', '=', id)
    .where('status', '=', 'pending')
    .executeTakeFirst();
  const mine = request?.requested_by === me.accountId;
  if (!request || (mine && accept)) {
    throw new AppError('no_pending_request', 'There is no request to switch waiting for your answer.');
  }
  const status = mine ? 'withdrawn' : accept ? 'accepted' : 'declined';
  await scope.tx
    .updateTable('mode_switch_requests')
    .set({ status, answered_by: me.accountId, answered_at: sql<Date>`now()` })
    .where('id', '=', requestId)
    .execute();
  if (status === 'accepted') {
    await scope.tx.updateTable('consultations').set({ mode: request.to_mode, updated_at: sql<Date>`now()` }).where('id', '=', id).execute();
  }
  scope.audit({
    action: status === 'accepted' ? 'consultation.mode_change' : `consultation.mode_request_${status}`,
    objectType: 'mode_switch_request',
    objectId: requestId,
    patientId: row.patient_id,
    details: { consultationId: id, to: request.to_mode, by: me.role },
  });
  changed(scope, deps, id);
  return readConsultation(scope, deps, id, { audit: false });
}

/** The clinician asks, in the call, for consent to record one medium. */
export async function requestRecordingConsent(scope: Scope, deps: ConsultationDeps, id: string, media: Mode): Promise<ConsultationState> {
  const clinicianId = requireClinician(scope);
  const row = await lockConsultation(scope, id);
  requireLive(row);
  const current = (await consentStates(scope, id))[media];
  if (current !== 'requested' && current !== 'granted') {
    await scope.tx.insertInto('recording_consents').values({ consultation_id: id, media, decision: 'requested', actor_id: clinicianId }).execute();
    scope.audit({ action: 'recording.consent_request', objectType: 'consultation', objectId: id, patientId: row.patient_id, details: { media } });
    changed(scope, deps, id);
  }
  return readConsultation(scope, deps, id, { audit: false });
}

/**
 * The patient decides. Withdrawing consent to audio ends the recording (what was recorded with
 * consent is kept); withdrawing consent to video stops video being recorded.
 */
export async function decideRecordingConsent(
  scope: Scope,
  deps: ConsultationDeps,
  id: string,
  media: Mode,
  decision: 'granted' | 'declined' | 'withdrawn',
): Promise<{ consultation: ConsultationState; audioWithdrawn: boolean }> {
  const patientId = requirePatient(scope);
  const row = await lockConsultation(scope, id);
  requireLive(row);
  const current = (await consentStates(scope, id))[media];
  if (decision === 'withdrawn' && current !== 'granted') {
    throw new AppError('conflict', 'There is no consent to withdraw.');
  }
  if (current !== decision) {
    await scope.tx.insertInto('recording_consents').values({ consultation_id: id, media, decision, actor_id: patientId }).execute();
    scope.audit({ action: `recording.consent_${decision}`, objectType: 'consultation', objectId: id, patientId, details: { media } });
    changed(scope, deps, id);
  }
  const audioWithdrawn = media === 'audio' && current === 'granted' && decision !== 'granted';
  return { consultation: await readConsultation(scope, deps, id, { audit: false }), audioWithdrawn };
}

/** The clinician's waiting room: today's consultations that are not over, who is waiting first. */
export async function waitingRoom(scope: Scope, deps: ConsultationDeps, now = new Date()) {
  requireClinician(scope);
  const since = new Date(now.getTime() - 12 * 3_600_000);
  const rows = await consultationsInScope(scope)
    .innerJoin('appointments as a', 'a.id', 'consultations.appointment_id')
    .leftJoin('patient_profiles as p', 'p.account_id', 'consultations.patient_id')
    .select([
      'consultations.id',
      'consultations.appointment_id',
      'consultations.patient_id',
      'consultations.mode',
      'consultations.status',
      'consultations.patient_joined_at',
      'a.starts_at',
      'p.given_name',
      'p.family_name',
    ])
    .where('consultations.status', '<>', 'ended')
    .where('a.starts_at', '>=', since)
    .orderBy('a.starts_at')
    .limit(100)
    .execute();
  for (const r of rows) {
    scope.audit({ action: 'consultation.waiting_room', objectType: 'consultation', objectId: r.id, patientId: r.patient_id });
  }
  return {
    consultations: rows.map((r) => ({
      id: r.id,
      appointmentId: r.appointment_id,
      patientId: r.patient_id,
      patient: { displayName: r.given_name ? `${r.given_name} ${r.family_name}` : 'Patient' },
      startsAt: iso(r.starts_at),
      mode: r.mode,
      status: r.status,
      patientPresent: deps.hub.presence(r.id).patient,
      patientJoinedAt: isoOrNull(r.patient_joined_at),
    })),
  };
}

/** What a signalling connection needs to know: is the caller a party, and is the call still on. */
export async function signallingMembership(scope: Scope, id: string): Promise<{ role: PartyRole; patientId: string; clinicianId: string }> {
  const me = partyOf(scope);
  const row = await consultationsInScope(scope)
    .select(['consultations.patient_id', 'consultations.clinician_id', 'consultations.status'])
    .where('consultations.id', '=', id)
    .executeTakeFirst();
  if (!row) throw notFound();
  if (row.status === 'ended') throw new AppError('consultation_ended', 'This consultation has ended.');
  scope.audit({ action: 'consultation.connect', objectType: 'consultation', objectId: id, patientId: row.patient_id, details: { as: me.role } });
  return { role: me.role, patientId: row.patient_id, clinicianId: row.clinician_id };
}
