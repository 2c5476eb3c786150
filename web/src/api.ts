import type {
  ApiIssue,
  Appointment,
  AppointmentLists,
  AuditEventPage,
  AuditEventQuery,
  AuditVerification,
  Availability,
  AvailabilityExceptionInput,
  BookAppointmentInput,
  ChangeFeatureInput,
  ChangePasswordInput,
  ClinicianList,
  ClinicianSchedule,
  ConsentDecision,
  ConsentInput,
  ConsentRequestInput,
  Consultation,
  ConsultationMode,
  ConsultationNotes,
  DeviceSessionList,
  Feature,
  FeatureList,
  FeatureStatusList,
  GuardAlert,
  GuardAlertList,
  LastDrill,
  MfaCodeInput,
  MfaEnrolled,
  MfaEnrolment,
  ModeAnswerInput,
  ModeRequestInput,
  NotesInput,
  NotificationList,
  Ok,
  OutcomeInput,
  PatientProfile,
  RecordingUpload,
  RegisterPatientInput,
  ReplaceAvailabilityInput,
  Replay,
  ReplayList,
  RescheduleInput,
  SessionInfo,
  SignInInput,
  SlotList,
  StaffList,
  StageResult,
  UpdateProfileInput,
  WaitingRoom,
  WeeklyRule,
} from './api-types';
import { featureOffMessage } from './features';

/** An error answer from the API, or a network failure (status 0, code `network_error`). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly issues: ApiIssue[];
  readonly requestId: string | undefined;
  /** Machine-readable facts about the error, e.g. the next chunk a recording expects. */
  readonly details: Record<string, string | number>;
  /** The server's Retry-After, in seconds, when it sent one (a 503 from a failing dependency). */
  retryAfterSeconds: number | undefined;

  constructor(
    status: number,
    code: string,
    message: string,
    issues: ApiIssue[] = [],
    requestId?: string,
    details: Record<string, string | number> = {},
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.issues = issues;
    this.requestId = requestId;
    this.details = details;
    this.retryAfterSeconds = undefined;
  }
}

const NETWORK_MESSAGE = 'We could not reach Confidant. Check your connection and try again.';
const UNEXPECTED_MESSAGE = 'Something went wrong on our side. Please try again in a moment.';

// The server rotates the token whenever the session changes, so the latest one wins.
let csrfToken: string | null = null;
let onSessionEnded: (() => void) | null = null;
let onFeatureDisabled: ((feature: string | undefined) => void) | null = null;

export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

/** Called when a request answers 401 `unauthenticated`: the session has ended on the server. */
export function setSessionEndedHandler(handler: (() => void) | null): void {
  onSessionEnded = handler;
}

/** Called when a request answers 503 `feature_disabled`: a kill switch is off, the app should re-read which. */
export function setFeatureDisabledHandler(handler: ((feature: string | undefined) => void) | null): void {
  onFeatureDisabled = handler;
}

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function toApiError(status: number, body: unknown): ApiError {
  const error = isRecord(body) && isRecord(body.error) ? body.error : null;
  if (!error || typeof error.code !== 'string' || typeof error.message !== 'string') {
    return new ApiError(status, status >= 500 ? 'internal' : 'unexpected_response', UNEXPECTED_MESSAGE);
  }
  const issues = Array.isArray(error.issues)
    ? error.issues.filter(
        (i): i is ApiIssue => isRecord(i) && typeof i.path === 'string' && typeof i.message === 'string',
      )
    : [];
  const requestId = typeof error.requestId === 'string' ? error.requestId : undefined;
  const details: Record<string, string | number> = {};
  if (isRecord(error.details)) {
    for (const [k, v] of Object.entries(error.details)) if (typeof v === 'string' || typeof v === 'number') details[k] = v;
  }
  // A switched-off feature is said in the words of that feature ("Playing replays is switched off…").
  const message = error.code === 'feature_disabled' ? featureOffMessage(stringDetail(details.feature)) : error.message;
  return new ApiError(status, error.code, message, issues, requestId, details);
}

const stringDetail = (value: string | number | undefined) => (typeof value === 'string' ? value : undefined);

/** The feature a request was refused for because it is switched off, or null for any other outcome. */
export function disabledFeatureOf(error: unknown): string | null {
  if (!(error instanceof ApiError) || error.code !== 'feature_disabled') return null;
  return stringDetail(error.details.feature) ?? '';
}

/** A request body: JSON, or raw bytes (a recording chunk) sent as application/octet-stream. */
type Body = object | { raw: Blob };

function isRaw(body: Body | undefined): body is { raw: Blob } {
  return isRecord(body) && body.raw instanceof Blob;
}

/** Answers worth one more try: the service was briefly unavailable, and nothing was done (or, with a key, doing it again is safe). */
const RETRYABLE = new Set(['database_unavailable', 'deadline_exceeded', 'outcome_unknown']);
const MAX_RETRIES = 2;
const MAX_RETRY_WAIT_MS = 5_000;

/** A fresh key for one change (crypto.randomUUID needs a secure context; getRandomValues does not). */
function newIdempotencyKey(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function wait(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new ApiError(0, 'network_error', NETWORK_MESSAGE));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new ApiError(0, 'network_error', NETWORK_MESSAGE));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Sends a request, trying again (up to twice: after the server's Retry-After, then twice that,
 * capped at 5 s) when the service said it was briefly unavailable: for reads, and for changes
 * sent with an Idempotency-Key, which the server answers from the first attempt if that one was
 * saved, so nothing happens twice. A keyed change is also sent again when the connection dropped
 * (its answer may be all that was lost). Other changes are never repeated behind the user's back,
 * and a caller with a retry loop of its own (a call page reconnecting) asks for no retry.
 */
async function request<T>(
  method: Method,
  path: string,
  body?: Body,
  opts: { signal?: AbortSignal; idempotent?: boolean; retry?: boolean } = {},
): Promise<T> {
  const key = opts.idempotent ? newIdempotencyKey() : undefined;
  const retries = opts.retry !== false && (method === 'GET' || key) ? MAX_RETRIES : 0;
  for (let attempt = 0; ; attempt++) {
    try {
      return await send<T>(method, path, body, opts.signal, key);
    } catch (error) {
      const retryable = error instanceof ApiError && (RETRYABLE.has(error.code) || (key !== undefined && error.code === 'network_error'));
      if (!retryable || attempt >= retries || opts.signal?.aborted) throw error;
      const ms = Math.min(MAX_RETRY_WAIT_MS, (error.retryAfterSeconds ?? 1) * 1000 * (attempt + 1));
      await wait(ms, opts.signal);
    }
  }
}

async function send<T>(method: Method, path: string, body: Body | undefined, signal: AbortSignal | undefined, idempotencyKey: string | undefined): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (idempotencyKey) headers['idempotency-key'] = idempotencyKey;
  const init: RequestInit = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (signal) init.signal = signal;
  if (method !== 'GET') {
    headers['x-csrf-token'] = csrfToken ?? 'none';
    if (isRaw(body)) {
      headers['content-type'] = 'application/octet-stream';
      init.body = body.raw;
    } else {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body ?? {});
    }
  }

  let response: Response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network_error', NETWORK_MESSAGE);
  }

  const data: unknown = await response.json().catch(() => undefined);
  if (!response.ok) {
    const error = toApiError(response.status, data);
    const retryAfter = Number(response.headers.get('retry-after'));
    if (Number.isFinite(retryAfter) && retryAfter > 0) error.retryAfterSeconds = retryAfter;
    if (error.status === 401 && error.code === 'unauthenticated') onSessionEnded?.();
    if (error.code === 'feature_disabled') onFeatureDisabled?.(stringDetail(error.details.feature));
    throw error;
  }
  if (data === undefined) throw new ApiError(response.status, 'unexpected_response', UNEXPECTED_MESSAGE);
  if (isRecord(data) && typeof data.csrfToken === 'string') csrfToken = data.csrfToken;
  return data as T;
}

export async function getSession(): Promise<SessionInfo> {
  const session = await request<SessionInfo>('GET', '/api/session');
  if (!session.authenticated) csrfToken = null;
  return session;
}

export const registerPatient = (input: RegisterPatientInput) =>
  request<StageResult>('POST', '/api/auth/register', input);

export const signIn = (email: string, password: string) =>
  request<StageResult>('POST', '/api/auth/sign-in', { email, password } satisfies SignInInput);

export async function signOut(): Promise<void> {
  try {
    await request<Ok>('POST', '/api/auth/sign-out', {});
  } finally {
    csrfToken = null;
  }
}

export const verifyMfaCode = (code: string) => request<StageResult>('POST', '/api/auth/mfa/verify', { code } satisfies MfaCodeInput);

export const startMfaEnrolment = () => request<MfaEnrolment>('POST', '/api/auth/mfa/enrol', {});

export const confirmMfaEnrolment = (code: string) =>
  request<MfaEnrolled>('POST', '/api/auth/mfa/enrol/confirm', { code } satisfies MfaCodeInput);

export const changePassword = (currentPassword: string, newPassword: string) =>
  request<StageResult>('POST', '/api/account/password', { currentPassword, newPassword } satisfies ChangePasswordInput);

export const listDeviceSessions = () => request<DeviceSessionList>('GET', '/api/account/sessions');

export const signOutDevice = (sessionId: string) =>
  request<Ok>('DELETE', `/api/account/sessions/${encodeURIComponent(sessionId)}`, {});

export const getProfile = () => request<PatientProfile>('GET', '/api/profile');

export const updateProfile = (changes: UpdateProfileInput) =>
  request<PatientProfile>('PATCH', '/api/profile', changes);

export const listStaff = () => request<StaffList>('GET', '/api/staff');

export const searchAuditEvents = (query: AuditEventQuery) =>
  request<AuditEventPage>('POST', '/api/audit/events/search', query);

export const verifyAuditChain = () => request<AuditVerification>('POST', '/api/audit/verify', {});

// Appointments

const id = (value: string) => encodeURIComponent(value);

export const listClinicians = () => request<ClinicianList>('GET', '/api/clinicians');

export function listFreeSlots(
  query: { clinicianId?: string; from?: string; days?: number; limit?: number; onePerTime?: boolean } = {},
): Promise<SlotList> {
  const params = new URLSearchParams();
  if (query.clinicianId) params.set('clinicianId', query.clinicianId);
  if (query.from) params.set('from', query.from);
  if (query.onePerTime) params.set('onePerTime', 'true');
  if (query.days !== undefined) params.set('days', String(query.days));
  if (query.limit !== undefined) params.set('limit', String(query.limit));
  const search = params.toString();
  return request<SlotList>('GET', search ? `/api/slots?${search}` : '/api/slots');
}

export const bookAppointment = (input: BookAppointmentInput) =>
  request<Appointment>('POST', '/api/appointments', input, { idempotent: true });

export const listMyAppointments = () => request<AppointmentLists>('GET', '/api/appointments');

export const cancelAppointment = (appointmentId: string) =>
  request<Appointment>('POST', `/api/appointments/${id(appointmentId)}/cancel`, {}, { idempotent: true });

export const rescheduleAppointment = (appointmentId: string, input: RescheduleInput) =>
  request<Appointment>('POST', `/api/appointments/${id(appointmentId)}/reschedule`, input, { idempotent: true });

export const recordAppointmentOutcome = (appointmentId: string, outcome: OutcomeInput['outcome']) =>
  request<Appointment>('POST', `/api/appointments/${id(appointmentId)}/outcome`, { outcome } satisfies OutcomeInput);

export const listNotifications = () => request<NotificationList>('GET', '/api/notifications');

export const markNotificationRead = (notificationId: string) =>
  request<Ok>('POST', `/api/notifications/${id(notificationId)}/read`, {});

/** The signed-in clinician's day list; `date` is the clinic's local date (default: today there). */
export const getClinicianSchedule = (date?: string) =>
  request<ClinicianSchedule>('GET', date ? `/api/schedule?date=${encodeURIComponent(date)}` : '/api/schedule');

export const getAvailability = (clinicianId: string) =>
  request<Availability>('GET', `/api/clinicians/${id(clinicianId)}/availability`);

export const replaceWeeklyAvailability = (clinicianId: string, rules: WeeklyRule[]) =>
  request<Availability>('PUT', `/api/clinicians/${id(clinicianId)}/availability`, { rules } satisfies ReplaceAvailabilityInput);

export const addAvailabilityException = (clinicianId: string, input: AvailabilityExceptionInput) =>
  request<Availability>('POST', `/api/clinicians/${id(clinicianId)}/availability/exceptions`, input);

export const removeAvailabilityException = (clinicianId: string, exceptionId: string) =>
  request<Availability>('DELETE', `/api/clinicians/${id(clinicianId)}/availability/exceptions/${id(exceptionId)}`, {});

// Consultations: the call, its recording and its notes

/** The patient enters the waiting room of their appointment; the clinician opens the call. */
export const joinConsultation = (appointmentId: string) =>
  request<Consultation>('POST', `/api/appointments/${id(appointmentId)}/consultation`, {});

export const getConsultation = (consultationId: string, opts: { retry?: boolean } = {}) =>
  request<Consultation>('GET', `/api/consultations/${id(consultationId)}`, undefined, opts);

export const getWaitingRoom = () => request<WaitingRoom>('GET', '/api/waiting-room');

export const startConsultation = (consultationId: string) =>
  request<Consultation>('POST', `/api/consultations/${id(consultationId)}/start`, {});

export const endConsultation = (consultationId: string) =>
  request<Consultation>('POST', `/api/consultations/${id(consultationId)}/end`, {});

/** To video: the other side is asked. To audio: at once. */
export const requestModeSwitch = (consultationId: string, mode: ConsultationMode) =>
  request<Consultation>('POST', `/api/consultations/${id(consultationId)}/mode-requests`, { mode } satisfies ModeRequestInput);

export const answerModeSwitch = (consultationId: string, requestId: string, accept: boolean) =>
  request<Consultation>('POST', `/api/consultations/${id(consultationId)}/mode-requests/${id(requestId)}/answer`, { accept } satisfies ModeAnswerInput);

export const requestRecordingConsent = (consultationId: string, media: ConsultationMode) =>
  request<Consultation>('POST', `/api/consultations/${id(consultationId)}/consent-requests`, { media } satisfies ConsentRequestInput);

export const decideRecordingConsent = (consultationId: string, media: ConsultationMode, decision: ConsentDecision) =>
  request<Consultation>('POST', `/api/consultations/${id(consultationId)}/consents`, { media, decision } satisfies ConsentInput, { idempotent: true });

export const getConsultationNotes = (consultationId: string) =>
  request<ConsultationNotes>('GET', `/api/consultations/${id(consultationId)}/notes`);

export const saveConsultationNotes = (consultationId: string, body: string) =>
  request<ConsultationNotes>('PUT', `/api/consultations/${id(consultationId)}/notes`, { body } satisfies NotesInput);

export const startRecording = (consultationId: string) =>
  request<RecordingUpload>('POST', `/api/consultations/${id(consultationId)}/recordings`, {});

export const uploadRecordingChunk = (recordingId: string, seq: number, chunk: Blob, signal?: AbortSignal) =>
  request<RecordingUpload>('PUT', `/api/recordings/${id(recordingId)}/chunks/${seq}`, { raw: chunk }, signal ? { signal } : {});

/** Asked by the chunk uploader's own retry loop: one try each time. */
export const getRecordingUpload = (recordingId: string) =>
  request<RecordingUpload>('GET', `/api/recordings/${id(recordingId)}/upload`, undefined, { retry: false });

export const finishRecording = (recordingId: string) =>
  request<RecordingUpload>('POST', `/api/recordings/${id(recordingId)}/finish`, {});

export const listReplays = () => request<ReplayList>('GET', '/api/replays');

export const getReplay = (recordingId: string) => request<Replay>('GET', `/api/recordings/${id(recordingId)}`);

/** Where the replay's media is played from; the session cookie authenticates it. */
export const replayMediaUrl = (recordingId: string) => `/api/recordings/${id(recordingId)}/media`;

/** The consultation's signalling WebSocket address. */
export const consultationSignalUrl = (consultationId: string) =>
  `${window.location.origin.replace(/^http/, 'ws')}/api/consultations/${id(consultationId)}/signal`;

// Kill switches and the breach guard

/** Which features are on now (anyone may ask); one try, the caller asks again on its own timer. */
export const getFeatureStatus = () => request<FeatureStatusList>('GET', '/api/features/status', undefined, { retry: false });

export const listFeatures = () => request<FeatureList>('GET', '/api/features');

export const changeFeature = (name: string, enabled: boolean, reason: string) =>
  request<Feature>('PUT', `/api/features/${id(name)}`, { enabled, reason } satisfies ChangeFeatureInput);

export const listGuardAlerts = () => request<GuardAlertList>('GET', '/api/guard/alerts');

/** Server-Sent Events: `event: alert` with an alert as JSON, each time one is raised or changes. */
export const guardAlertStreamUrl = '/api/guard/alerts/stream';

export const acknowledgeGuardAlert = (alertId: string) =>
  request<GuardAlert>('POST', `/api/guard/alerts/${id(alertId)}/acknowledge`, {});

export const getLastDrill = () => request<LastDrill>('GET', '/api/guard/drill');

/** What to tell the user about any error thrown by a call above (or by a bug). */
export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  return UNEXPECTED_MESSAGE;
}
