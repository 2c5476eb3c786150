import type { Scopes } from '../../access/scope';
import type { MfaSecretBox } from './mfa-secrets';
import type { SessionDirectory } from './sessions';

/** What the identity area's sign-in flows need: they create principals, so they open scopes. */
export interface IdentityDeps {
  scopes: Scopes;
  sessions: SessionDirectory;
  issuer: string;
  registrationsPerAddress: number;
  /** Seals and opens authenticator secrets at rest. */
  mfaSecrets: MfaSecretBox;
}
