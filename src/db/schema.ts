import type { ColumnType, Generated } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
/** A nullable column that may be left out of an insert. */
type Opt<T> = ColumnType<T | null, T | null | undefined, T | null>;

export interface AccountsTable {
  id: string;
  kind: 'patient' | 'clinician' | 'staff';
  staff_role: Opt<'dpo' | 'admin'>;
  email: string;
  display_name: string;
  mfa_enabled_at: Opt<Date>;
  mfa_required: Generated<boolean>;
  created_at: Generated<Date>;
  disabled_at: Opt<Date>;
}

export interface AccountCredentialsTable {
  account_id: string;
  password_hash: string;
  password_changed_at: Generated<Date>;
  mfa_secret: Opt<string>;
  mfa_pending_secret: Opt<string>;
  mfa_last_step: Opt<number>;
}

export interface PatientProfilesTable {
  account_id: string;
  given_name: string;
  family_name: string;
  date_of_birth: string;
  nhs_number: Opt<string>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface MfaRecoveryCodesTable {
  id: Generated<string>;
  account_id: string;
  code_hash: string;
  used_at: Opt<Date>;
}

export interface FeaturesTable {
  name: string;
  enabled: Generated<boolean>;
  changed_at: Generated<Date>;
  changed_by: string | null;
  changed_by_label: Generated<string>;
  reason: Generated<string>;
  disabled_by_kind: 'person' | 'automatic' | null;
}

export interface GuardCursorTable {
  singleton: Generated<boolean>;
  last_seq: number;
  moved_at: Generated<Date>;
}

export interface IncidentsTable {
  id: Generated<string>;
  opened_at: Generated<Date>;
  opened_by: string;
  status: Generated<'open' | 'closed'>;
  rule: string;
  severity: 'critical' | 'high' | 'medium';
  feature: string | null;
  event_seqs: ColumnType<(number | string)[], number[], number[]>;
  event_count: number;
}

export interface GuardAlertsTable {
  id: Generated<string>;
  raised_at: Generated<Date>;
  rule: 'containment' | 'integrity' | 'probing' | 'volume';
  severity: 'critical' | 'high' | 'medium';
  feature: string | null;
  action: 'feature_disabled' | 'throttled' | 'none';
  summary: string;
  event_seqs: ColumnType<(number | string)[], number[], number[]>;
  event_count: number;
  last_event_at: Generated<Date>;
  actor_id: string | null;
  incident_id: string | null;
  acknowledged_at: Date | null;
  acknowledged_by: string | null;
  acknowledged_by_label: string | null;
  webhook_sent_at: Date | null;
  webhook_attempts: Generated<number>;
}

export interface GuardProbeHitsTable {
  actor_id: string;
  at: Date;
  seq: number;
}

export interface GuardThrottlesTable {
  actor_id: string;
  until: Date;
  alert_id: string;
  created_at: Generated<Date>;
}

export interface SessionsTable {
  id: Generated<string>;
  token_hash: Buffer;
  account_id: string;
  stage: 'full' | 'mfa' | 'enrol';
  created_at: Generated<Date>;
  last_seen_at: Timestamp;
  absolute_expires_at: Timestamp;
  revoked_at: Opt<Date>;
  revoked_reason: Opt<string>;
  client_ip: Opt<string>;
  user_agent: Opt<string>;
}

export interface SignInFailuresTable {
  id: Generated<string>;
  key_hash: Buffer;
  failed_at: Generated<Date>;
}

export interface AuditEventsTable {
  seq: Generated<number>;
  id: Generated<string>;
  occurred_at: Generated<Date>;
  actor_kind: string;
  actor_id: string | null;
  actor_role: string | null;
  session_id: string | null;
  system_reason: string | null;
  action: string;
  object_type: string | null;
  object_id: string | null;
  patient_id: string | null;
  outcome: 'success' | 'denied' | 'failure';
  client_ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  details: string | null;
  prev_hash: Generated<Buffer>;
  hash: Generated<Buffer>;
}

export interface AvailabilityRulesTable {
  id: Generated<string>;
  clinician_id: string;
  weekday: number;
  start_time: string;
  end_time: string;
  created_at: Generated<Date>;
}

export interface AvailabilityExceptionsTable {
  id: Generated<string>;
  clinician_id: string;
  starts_at: Timestamp;
  ends_at: Timestamp;
  reason: 'leave' | 'blocked' | 'training' | 'other';
  note: Opt<string>;
  created_at: Generated<Date>;
}

export type AppointmentStatus = 'booked' | 'cancelled' | 'completed' | 'no_show';

export interface AppointmentsTable {
  id: Generated<string>;
  patient_id: string;
  clinician_id: string;
  starts_at: Timestamp;
  ends_at: Timestamp;
  mode: 'audio' | 'video';
  reason: string;
  status: Generated<AppointmentStatus>;
  cancelled_by: Opt<'patient' | 'clinician' | 'staff'>;
  cancelled_at: Opt<Date>;
  rescheduled_from: Opt<string>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface NotificationsTable {
  id: Generated<string>;
  recipient_id: string;
  kind: 'appointment_booked' | 'appointment_cancelled' | 'appointment_rescheduled';
  appointment_id: Opt<string>;
  created_at: Generated<Date>;
  read_at: Opt<Date>;
}

export interface OutboxTable {
  id: Generated<string>;
  recipient_id: string;
  channel: 'email';
  template: string;
  appointment_id: Opt<string>;
  /** A guard alert the DPO is emailed about (template 'guard_alert'). */
  alert_id: Opt<string>;
  created_at: Generated<Date>;
  sent_at: Opt<Date>;
  attempts: Generated<number>;
}

/**
 * Whose a row is: set by the database from the row's parent (a BEFORE INSERT trigger), never by
 * the service. The type forbids writing it, so code cannot even try.
 */
type Owner = ColumnType<string, never, never>;
type Mode = 'audio' | 'video';

export interface ConsultationsTable {
  id: Generated<string>;
  appointment_id: ColumnType<string, string, never>;
  patient_id: Owner;
  clinician_id: Owner;
  booked_mode: ColumnType<Mode, never, never>;
  mode: Mode;
  status: Generated<'waiting' | 'live' | 'ended'>;
  patient_joined_at: Opt<Date>;
  started_at: Opt<Date>;
  ended_at: Opt<Date>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface ModeSwitchRequestsTable {
  id: Generated<string>;
  consultation_id: ColumnType<string, string, never>;
  patient_id: Owner;
  clinician_id: Owner;
  requested_by: string;
  to_mode: Mode;
  status: Generated<'pending' | 'accepted' | 'declined' | 'withdrawn'>;
  answered_by: Opt<string>;
  created_at: Generated<Date>;
  answered_at: Opt<Date>;
}

export type ConsentDecision = 'requested' | 'granted' | 'declined' | 'withdrawn';

export interface RecordingConsentsTable {
  id: Generated<string>;
  consultation_id: string;
  patient_id: Owner;
  clinician_id: Owner;
  media: Mode;
  decision: ConsentDecision;
  actor_id: string;
  created_at: Generated<Date>;
}

export type RecordingStatus = 'recording' | 'finalising' | 'ready' | 'failed';

export interface RecordingsTable {
  id: ColumnType<string, string, never>;
  consultation_id: ColumnType<string, string, never>;
  patient_id: Owner;
  clinician_id: Owner;
  status: Generated<RecordingStatus>;
  media_type: 'video/webm' | 'audio/webm';
  key_id: string;
  wrapped_key: Buffer;
  next_seq: Generated<number>;
  received_bytes: ColumnType<string, never, string | number>;
  plaintext_size: ColumnType<string | null, never, number | null>;
  segment_size: Opt<number>;
  duration_ms: Opt<number>;
  time_index: ColumnType<[number, number][] | null, never, string | null>;
  video_consented: Generated<boolean>;
  failure_code: Opt<string>;
  started_at: Generated<Date>;
  last_chunk_at: Opt<Date>;
  finalising_since: Opt<Date>;
  finalised_at: Opt<Date>;
}

export interface RecordingChunksTable {
  recording_id: string;
  seq: number;
  patient_id: Owner;
  clinician_id: Owner;
  byte_length: number;
  sha256: Buffer;
  received_at: Generated<Date>;
}

export interface ConsultationNotesTable {
  consultation_id: ColumnType<string, string, never>;
  patient_id: Owner;
  clinician_id: Owner;
  body: string;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface IdempotencyKeysTable {
  principal_id: string;
  key: string;
  route: string;
  fingerprint: Buffer;
  status: Opt<number>;
  response: Opt<unknown>;
  patient_ids: ColumnType<string[], string[] | undefined, string[]>;
  created_at: Generated<Date>;
}

export interface DB {
  idempotency_keys: IdempotencyKeysTable;
  availability_rules: AvailabilityRulesTable;
  availability_exceptions: AvailabilityExceptionsTable;
  appointments: AppointmentsTable;
  notifications: NotificationsTable;
  outbox: OutboxTable;
  consultations: ConsultationsTable;
  mode_switch_requests: ModeSwitchRequestsTable;
  recording_consents: RecordingConsentsTable;
  recordings: RecordingsTable;
  recording_chunks: RecordingChunksTable;
  consultation_notes: ConsultationNotesTable;
  accounts: AccountsTable;
  account_credentials: AccountCredentialsTable;
  patient_profiles: PatientProfilesTable;
  mfa_recovery_codes: MfaRecoveryCodesTable;
  sessions: SessionsTable;
  sign_in_failures: SignInFailuresTable;
  audit_events: AuditEventsTable;
  features: FeaturesTable;
  guard_cursor: GuardCursorTable;
  incidents: IncidentsTable;
  guard_alerts: GuardAlertsTable;
  guard_probe_hits: GuardProbeHitsTable;
  guard_throttles: GuardThrottlesTable;
}
