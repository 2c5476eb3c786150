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
  created_at: Generated<Date>;
  sent_at: Opt<Date>;
  attempts: Generated<number>;
}

export interface DB {
  availability_rules: AvailabilityRulesTable;
  availability_exceptions: AvailabilityExceptionsTable;
  appointments: AppointmentsTable;
  notifications: NotificationsTable;
  outbox: OutboxTable;
  accounts: AccountsTable;
  account_credentials: AccountCredentialsTable;
  patient_profiles: PatientProfilesTable;
  mfa_recovery_codes: MfaRecoveryCodesTable;
  sessions: SessionsTable;
  sign_in_failures: SignInFailuresTable;
  audit_events: AuditEventsTable;
}
