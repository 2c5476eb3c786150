/** Where a call came from: carried into every audit event. */
export interface RequestContext {
  requestId: string;
  clientIp: string | null;
  userAgent: string | null;
  /**
   * Aborted at the request's deadline, or when the client of a state-changing request leaves:
   * every transaction the request opens then rolls back (or is reported as of unknown outcome, if
   * its COMMIT was in flight).
   * Absent for work that belongs to no request (start-up, jobs, the CLI).
   */
  signal?: AbortSignal;
}

export const noRequest = (requestId: string): RequestContext => ({ requestId, clientIp: null, userAgent: null });
