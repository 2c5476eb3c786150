import type { FastifyBaseLogger } from 'fastify';
import type { Guard } from '../modules/guard/guard';
import type { Scopes } from '../access/scope';
import type { Config } from '../config';
import type { ConsultationDeps } from '../modules/consultations/consultations';
import type { IdentityDeps } from '../modules/identity/identity-deps';
import type { RecordingDeps } from '../modules/recordings/recordings';
import type { SessionDirectory } from '../modules/identity/sessions';
import type { Readiness } from '../modules/health/readiness';
import type { Metrics } from '../observability/metrics';
import type { FeatureFlags } from '../modules/features/feature-flags';

/** Everything a route may reach, wired once in the composition root (src/server.ts). */
export interface AppDeps {
  config: Config;
  scopes: Scopes;
  sessions: SessionDirectory;
  identity: IdentityDeps;
  consultations: ConsultationDeps;
  recordings: RecordingDeps;
  readiness: Pick<Readiness, 'check'>;
  metrics: Metrics;
  /** The kill switches, kept current from the database (src/modules/features). */
  features: Pick<FeatureFlags, 'isEnabled' | 'isEnabledNow' | 'onChange'>;
  /** The breach guard: throttled principals and new alerts, kept current from the database (src/modules/guard). */
  guard: Pick<Guard, 'isThrottled' | 'onAlert'>;
  logger: FastifyBaseLogger;
  databaseKind: 'pglite' | 'postgres';
}
