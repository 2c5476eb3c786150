// No imports: the web app bundles this module as it is, so it must not pull in zod.

/** WebSocket close codes (4000–4999 are the application's). */
export const SignalClose = {
  unauthenticated: 4401,
  notFound: 4404,
  ended: 4409,
  badMessage: 4400,
  tooMuch: 4429,
  replaced: 4000,
  /** The call feature was switched off (a kill switch): the same as HTTP's 503 feature_disabled. */
  featureDisabled: 4503,
  shuttingDown: 1001,
} as const;
