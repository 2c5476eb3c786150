/** Where a call came from: carried into every audit event. */
export interface RequestContext {
  requestId: string;
  clientIp: string | null;
  userAgent: string | null;
}

export const noRequest = (requestId: string): RequestContext => ({ requestId, clientIp: null, userAgent: null });
