// Response shapes of the Confidant API, kept here so the web app never imports server code.

export type AccountKind = 'patient' | 'clinician' | 'staff';
export type StaffRole = 'dpo' | 'admin';
export type SessionStage = 'full' | 'mfa' | 'enrol';

export interface Account {
  id: string;
  kind: AccountKind;
  role: StaffRole | null;
  displayName: string;
  email: string;
  mfaEnabled: boolean;
}

export interface SignedInSession {
  authenticated: true;
  stage: SessionStage;
  csrfToken: string;
  account: Account;
  permissions: string[];
  idleTimeoutSeconds: number;
  expiresAt: string;
}

export type SessionInfo = { authenticated: false } | SignedInSession;

export interface StageResult {
  stage: SessionStage;
  csrfToken: string;
}

export interface RegisterPatientInput {
  givenName: string;
  familyName: string;
  dateOfBirth: string;
  email: string;
  password: string;
  nhsNumber?: string;
}

export interface MfaEnrolment {
  secret: string;
  otpauthUri: string;
  qrSvg: string;
}

export interface MfaEnrolled {
  recoveryCodes: string[];
  csrfToken: string;
}

export interface DeviceSession {
  id: string;
  current: boolean;
  createdAt: string;
  lastSeenAt: string;
  clientIp: string | null;
  userAgent: string | null;
}

export interface PatientProfile {
  patientId: string;
  givenName: string;
  familyName: string;
  dateOfBirth: string;
  nhsNumber: string | null;
  email: string;
  createdAt: string;
}

export interface StaffMember {
  id: string;
  kind: 'clinician' | 'staff';
  role: 'clinician' | 'dpo' | 'admin';
  displayName: string;
  email: string;
  mfaEnabled: boolean;
  createdAt: string;
}

export type AuditOutcome = 'success' | 'denied' | 'failure';

export interface AuditEvent {
  seq: number;
  id: string;
  occurredAt: string;
  actorKind: string;
  actorId: string | null;
  actorRole: string | null;
  systemReason: string | null;
  action: string;
  objectType: string | null;
  objectId: string | null;
  patientId: string | null;
  outcome: AuditOutcome;
  clientIp: string | null;
  requestId: string | null;
}

export interface AuditEventQuery {
  patientId?: string;
  actorId?: string;
  action?: string;
  outcome?: AuditOutcome;
  beforeSeq?: number;
  limit?: number;
}

export interface AuditEventPage {
  events: AuditEvent[];
  nextBeforeSeq: number | null;
}

export interface AuditVerification {
  ok: boolean;
  checked: number;
  headSeq: number;
  firstBad?: { seq: number; id: string; problem: string };
}

export interface ApiIssue {
  path: string;
  message: string;
}
