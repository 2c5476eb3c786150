import type {
  ApiIssue,
  AppNotification,
  Appointment,
  AppointmentLists,
  AuditEventPage,
  AuditEventQuery,
  AuditVerification,
  Availability,
  AvailabilityExceptionInput,
  BookAppointmentInput,
  Clinician,
  ClinicianSchedule,
  DeviceSession,
  MfaEnrolled,
  MfaEnrolment,
  PatientProfile,
  RegisterPatientInput,
  RescheduleInput,
  SessionInfo,
  SlotList,
  StaffMember,
  StageResult,
  WeeklyRule,
} from './api-types';

/** An error answer from the API, or a network failure (status 0, code `network_error`). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly issues: ApiIssue[];
  readonly requestId: string | undefined;

  constructor(status: number, code: string, message: string, issues: ApiIssue[] = [], requestId?: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.issues = issues;
    this.requestId = requestId;
  }
}

const NETWORK_MESSAGE = 'We could not reach Confidant. Check your connection and try again.';
const UNEXPECTED_MESSAGE = 'Something went wrong on our side. Please try again in a moment.';

// The server rotates the token whenever the session changes, so the latest one wins.
let csrfToken: string | null = null;
let onSessionEnded: (() => void) | null = null;

export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

/** Called when a request answers 401 `unauthenticated`: the session has ended on the server. */
export function setSessionEndedHandler(handler: (() => void) | null): void {
  onSessionEnded = handler;
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
  return new ApiError(status, error.code, error.message, issues, requestId);
}

async function request<T>(method: Method, path: string, body?: object): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const init: RequestInit = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (method !== 'GET') {
    headers['content-type'] = 'application/json';
    headers['x-csrf-token'] = csrfToken ?? 'none';
    init.body = JSON.stringify(body ?? {});
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
    if (error.status === 401 && error.code === 'unauthenticated') onSessionEnded?.();
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
  request<StageResult>('POST', '/api/auth/sign-in', { email, password });

export async function signOut(): Promise<void> {
  try {
    await request<{ ok: true }>('POST', '/api/auth/sign-out', {});
  } finally {
    csrfToken = null;
  }
}

export const verifyMfaCode = (code: string) => request<StageResult>('POST', '/api/auth/mfa/verify', { code });

export const startMfaEnrolment = () => request<MfaEnrolment>('POST', '/api/auth/mfa/enrol', {});

export const confirmMfaEnrolment = (code: string) =>
  request<MfaEnrolled>('POST', '/api/auth/mfa/enrol/confirm', { code });

export const changePassword = (currentPassword: string, newPassword: string) =>
  request<StageResult>('POST', '/api/account/password', { currentPassword, newPassword });

export const listDeviceSessions = () => request<{ sessions: DeviceSession[] }>('GET', '/api/account/sessions');

export const signOutDevice = (sessionId: string) =>
  request<{ ok: true }>('DELETE', `/api/account/sessions/${encodeURIComponent(sessionId)}`, {});

export const getProfile = () => request<PatientProfile>('GET', '/api/profile');

export const updateProfile = (changes: { givenName?: string; familyName?: string }) =>
  request<PatientProfile>('PATCH', '/api/profile', changes);

export const listStaff = () => request<{ staff: StaffMember[] }>('GET', '/api/staff');

export const searchAuditEvents = (query: AuditEventQuery) =>
  request<AuditEventPage>('POST', '/api/audit/events/search', query);

export const verifyAuditChain = () => request<AuditVerification>('POST', '/api/audit/verify', {});

// Appointments

const id = (value: string) => encodeURIComponent(value);

export const listClinicians = () => request<{ clinicians: Clinician[] }>('GET', '/api/clinicians');

export function listFreeSlots(query: { clinicianId?: string; days?: number; limit?: number } = {}): Promise<SlotList> {
  const params = new URLSearchParams();
  if (query.clinicianId) params.set('clinicianId', query.clinicianId);
  if (query.days !== undefined) params.set('days', String(query.days));
  if (query.limit !== undefined) params.set('limit', String(query.limit));
  const search = params.toString();
  return request<SlotList>('GET', search ? `/api/slots?${search}` : '/api/slots');
}

export const bookAppointment = (input: BookAppointmentInput) => request<Appointment>('POST', '/api/appointments', input);

export const listMyAppointments = () => request<AppointmentLists>('GET', '/api/appointments');

export const cancelAppointment = (appointmentId: string) =>
  request<Appointment>('POST', `/api/appointments/${id(appointmentId)}/cancel`, {});

export const rescheduleAppointment = (appointmentId: string, input: RescheduleInput) =>
  request<Appointment>('POST', `/api/appointments/${id(appointmentId)}/reschedule`, input);

export const recordAppointmentOutcome = (appointmentId: string, outcome: 'completed' | 'no_show') =>
  request<Appointment>('POST', `/api/appointments/${id(appointmentId)}/outcome`, { outcome });

export const listNotifications = () => request<{ notifications: AppNotification[] }>('GET', '/api/notifications');

export const markNotificationRead = (notificationId: string) =>
  request<{ ok: true }>('POST', `/api/notifications/${id(notificationId)}/read`, {});

/** The signed-in clinician's day list; `date` is the clinic's local date (default: today there). */
export const getClinicianSchedule = (date?: string) =>
  request<ClinicianSchedule>('GET', date ? `/api/schedule?date=${encodeURIComponent(date)}` : '/api/schedule');

export const getAvailability = (clinicianId: string) =>
  request<Availability>('GET', `/api/clinicians/${id(clinicianId)}/availability`);

export const replaceWeeklyAvailability = (clinicianId: string, rules: WeeklyRule[]) =>
  request<Availability>('PUT', `/api/clinicians/${id(clinicianId)}/availability`, { rules });

export const addAvailabilityException = (clinicianId: string, input: AvailabilityExceptionInput) =>
  request<Availability>('POST', `/api/clinicians/${id(clinicianId)}/availability/exceptions`, input);

export const removeAvailabilityException = (clinicianId: string, exceptionId: string) =>
  request<Availability>('DELETE', `/api/clinicians/${id(clinicianId)}/availability/exceptions/${id(exceptionId)}`, {});

/** What to tell the user about any error thrown by a call above (or by a bug). */
export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  return UNEXPECTED_MESSAGE;
}
