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
  /** How long before an appointment its consultation opens. */
  consultationJoinEarlySeconds: number;
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
  /** Only for the practice manager and the DPO, who look after accounts. */
  email?: string;
  mfaEnabled?: boolean;
  createdAt?: string;
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
  /** Identifiers, codes and numbers only: a replay's `range`, `bytes`, `fromMs` and `toMs`; a denial's `reason`. */
  details: Record<string, unknown> | null;
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

// Appointments

export type ConsultationMode = 'audio' | 'video';
export type AppointmentStatus = 'booked' | 'cancelled' | 'completed' | 'no_show';
export type CancelledBy = 'patient' | 'clinician' | 'staff';

export interface Clinician {
  id: string;
  displayName: string;
}

export interface Slot {
  clinicianId: string;
  clinicianName: string;
  startsAt: string;
  endsAt: string;
}

export interface SlotList {
  timeZone: string;
  slotMinutes: number;
  slots: Slot[];
}

export interface Appointment {
  id: string;
  clinician: Clinician;
  startsAt: string;
  endsAt: string;
  mode: ConsultationMode;
  reason: string;
  status: AppointmentStatus;
  cancelledBy: CancelledBy | null;
  rescheduledFrom: string | null;
  /** The consultation held for it, once it has ended: its notes (and any recording). */
  consultationId: string | null;
  createdAt: string;
}

export interface AppointmentLists {
  upcoming: Appointment[];
  past: Appointment[];
  /** How many upcoming consultations a patient may hold at a time. */
  maxUpcoming: number;
}

export interface BookAppointmentInput {
  clinicianId: string;
  startsAt: string;
  mode: ConsultationMode;
  reason: string;
}

export interface RescheduleInput {
  startsAt: string;
  clinicianId?: string;
  mode?: ConsultationMode;
}

export type NotificationKind = 'appointment_booked' | 'appointment_cancelled' | 'appointment_rescheduled';

export interface AppNotification {
  id: string;
  kind: NotificationKind;
  appointmentId: string | null;
  appointmentStartsAt: string | null;
  createdAt: string;
  read: boolean;
}

export interface ScheduledConsultation {
  id: string;
  patientName: string;
  dateOfBirth: string;
  startsAt: string;
  endsAt: string;
  mode: ConsultationMode;
  reason: string;
  status: AppointmentStatus;
  cancelledBy: CancelledBy | null;
  /** The consultation held for it, once ended: its notes open from the day list. */
  consultationId: string | null;
}

export interface ClinicianSchedule {
  /** The clinic's local date, YYYY-MM-DD. */
  date: string;
  timeZone: string;
  appointments: ScheduledConsultation[];
}

/** One weekly period in the clinic's local time; `end` may be "24:00". */
export interface WeeklyRule {
  weekday: number; // 1 = Monday … 7 = Sunday
  start: string;
  end: string;
}

export type ExceptionReason = 'leave' | 'blocked' | 'training' | 'other';

export interface AvailabilityException {
  id: string;
  startsAt: string;
  endsAt: string;
  reason: string;
  note: string | null;
}

export interface Availability {
  clinicianId: string;
  timeZone: string;
  slotMinutes: number;
  rules: WeeklyRule[];
  exceptions: AvailabilityException[];
}

export interface AvailabilityExceptionInput {
  startsAt: string;
  endsAt: string;
  reason: ExceptionReason;
  note?: string;
}

// Consultations (the call) and their recordings

export type ConsultationStatus = 'waiting' | 'live' | 'ended';
export type ConsentState = 'none' | 'requested' | 'granted' | 'declined' | 'withdrawn';
export type RecordingStatus = 'recording' | 'finalising' | 'ready' | 'failed';
export type Party = 'patient' | 'clinician';

export interface Presence {
  patient: boolean;
  clinician: boolean;
}

export interface Consultation {
  id: string;
  appointmentId: string;
  /** Which side of the call the caller is. */
  you: Party;
  clinician: { id: string; displayName: string };
  patient: { displayName: string };
  startsAt: string;
  endsAt: string;
  bookedMode: ConsultationMode;
  mode: ConsultationMode;
  status: ConsultationStatus;
  startedAt: string | null;
  endedAt: string | null;
  pendingModeRequest: { id: string; toMode: ConsultationMode; requestedBy: Party; createdAt: string } | null;
  /** The last request that was answered: whoever asked learns whether it was declined. */
  lastModeAnswer: {
    id: string;
    toMode: ConsultationMode;
    requestedBy: Party;
    status: 'accepted' | 'declined' | 'withdrawn';
    answeredAt: string;
  } | null;
  consent: { audio: ConsentState; video: ConsentState };
  recording: { id: string; status: RecordingStatus; startedAt: string; videoConsented: boolean } | null;
  presence: Presence;
  rtc: { iceServers: { urls: string[]; username?: string; credential?: string }[] };
}

export interface WaitingRoomEntry {
  id: string;
  appointmentId: string;
  patient: { displayName: string };
  startsAt: string;
  mode: ConsultationMode;
  status: ConsultationStatus;
  patientPresent: boolean;
  patientJoinedAt: string | null;
}

export interface WaitingRoom {
  consultations: WaitingRoomEntry[];
}

export type ConsentDecision = 'granted' | 'declined' | 'withdrawn';

export interface RecordingUpload {
  id: string;
  status: RecordingStatus;
  /** The next chunk the server expects; chunks are numbered from 0. */
  nextSeq: number;
  receivedBytes: number;
  maxChunkBytes: number;
}

export interface Replay {
  id: string;
  consultationId: string;
  consultationStartedAt: string | null;
  recordedAt: string;
  clinician: { id: string; displayName: string };
  patient: { displayName: string };
  /** Video if the patient agreed to video being recorded, else audio. */
  mode: ConsultationMode;
  durationMs: number;
  sizeBytes: number;
  mediaType: string;
}

export interface ConsultationNotes {
  consultationId: string;
  body: string;
  updatedAt: string | null;
}

type SignalData =
  | { kind: 'offer' | 'answer'; sdp: string }
  | {
      kind: 'ice';
      candidate: { candidate: string; sdpMid?: string | null; sdpMLineIndex?: number | null; usernameFragment?: string | null } | null;
    }
  | { kind: 'restart' };

/** What the browser sends over the consultation's WebSocket. */
export type ClientSignal =
  | { type: 'signal'; data: SignalData }
  | { type: 'media'; audio: boolean; video: boolean }
  | { type: 'ping' };

/** What the server sends; `changed` means: fetch the consultation again. */
export type ServerSignal =
  | { type: 'welcome'; you: Party; presence: Presence; /** How often to ping (ms): the server drops a socket silent for 2.5 of these. */ pingMs: number }
  | { type: 'presence'; presence: Presence }
  | { type: 'signal'; from: Party; data: SignalData }
  | { type: 'media'; from: Party; audio: boolean; video: boolean }
  | { type: 'changed' }
  | { type: 'pong' }
  | { type: 'error'; code: string; message: string };

/** WebSocket close codes the server uses (4000–4999 are the application's). */
export const SignalClose = {
  unauthenticated: 4401,
  notFound: 4404,
  ended: 4409,
  badMessage: 4400,
  tooMuch: 4429,
  replaced: 4000,
  shuttingDown: 1001,
} as const;
