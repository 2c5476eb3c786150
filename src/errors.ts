/**
 * Errors a user can cause: a stable code, a message safe to show, an HTTP status.
 * Anything else that escapes a handler is a bug and answers 500 `internal` with no detail.
 */
export const ErrorStatus = {
  bad_request: 400,
  validation_failed: 400,
  invalid_json: 400,
  unsupported_media_type: 415,
  payload_too_large: 413,
  unauthenticated: 401,
  invalid_credentials: 401,
  mfa_required: 401,
  invalid_mfa_code: 401,
  mfa_enrolment_required: 403,
  csrf_failed: 403,
  /** Switching a feature back on after an automatic kill is the DPO's decision. */
  dpo_required: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  email_taken: 409,
  mfa_already_enabled: 409,
  weak_password: 422,
  unknown_clinician: 422,
  slot_in_past: 422,
  slot_unavailable: 422,
  slot_taken: 409,
  too_many_bookings: 409,
  appointment_not_changeable: 409,
  appointment_not_started: 409,
  invalid_nhs_number: 422,
  consultation_not_open: 409,
  consultation_ended: 409,
  mode_request_pending: 409,
  no_pending_request: 409,
  consent_required: 409,
  recording_in_progress: 409,
  recording_not_open: 409,
  recording_not_ready: 409,
  chunk_out_of_order: 409,
  chunk_conflict: 409,
  recording_too_large: 413,
  range_not_satisfiable: 416,
  upgrade_required: 426,
  recording_damaged: 500,
  too_many_attempts: 429,
  /** The breach guard slowed this account down (many not-found answers on others' records). */
  throttled: 429,
  egress_denied: 500,
  internal: 500,
  unavailable: 503,
  idempotency_key_reused: 422,
  /** The database cannot be reached (restart, failover, network): nothing was done; try again. */
  database_unavailable: 503,
  /** The request ran out of time (its deadline, or the database's statement or lock timeout): nothing was changed. */
  deadline_exceeded: 503,
  /** The connection was lost while committing: the change may or may not have been saved. */
  outcome_unknown: 503,
  /** The disk is full: nothing was saved. */
  storage_full: 503,
  /** The feature is switched off (a kill switch): nothing was done. */
  feature_disabled: 503,
  /** Readiness: a dependency is missing (named in details). */
  not_ready: 503,
} as const;

export type ErrorCode = keyof typeof ErrorStatus;

export interface ErrorBody {
  error: {
    code: ErrorCode;
    message: string;
    requestId?: string;
    issues?: { path: string; message: string }[];
    /** Machine-readable facts about the error (identifiers and numbers only), e.g. the next chunk expected. */
    details?: Record<string, string | number>;
  };
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly issues: { path: string; message: string }[] | undefined;
  readonly headers: Record<string, string> | undefined;
  readonly details: Record<string, string | number> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { issues?: { path: string; message: string }[]; headers?: Record<string, string>; details?: Record<string, string | number> } = {},
  ) {
    super(message);
    this.name = 'AppError';
    this.code = code;
    this.status = ErrorStatus[code];
    this.issues = opts.issues;
    this.headers = opts.headers;
    this.details = opts.details;
  }
}

/** The one answer for "missing" and "not yours". */
export function notFound(): AppError {
  return new AppError('not_found', 'Not found');
}
