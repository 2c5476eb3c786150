/**
 * Authenticator (TOTP) secrets at rest: sealed with AES-256-GCM under a key derived from the
 * master key (HKDF, its own purpose), bound to the account and to the slot (the active secret or
 * one pending enrolment), so a sealed value copied to another account or slot does not open.
 * A database dump alone therefore yields no working second factor.
 *
 * Stored form: `v1:<master key id>:<base64(iv 12 | ciphertext | tag 16)>`.
 * AAD: 'confidant/mfa-secret/v1' | account UUID | slot.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import type { RequestContext } from '../../access/request-context';
import type { Scopes } from '../../access/scope';
import type { MasterKey } from '../recordings/recording-keys';

export type MfaSlot = 'active' | 'pending';

export interface MfaSecretBox {
  seal(accountId: string, slot: MfaSlot, secret: string): string;
  /** The secret, or null when the stored value does not open (another key, another account or slot, tampered). */
  open(accountId: string, slot: MfaSlot, stored: string): string | null;
}

const VERSION = 'v1';
const DOMAIN = 'confidant/mfa-secret/v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export const isSealed = (stored: string) => stored.startsWith(`${VERSION}:`);

function aad(accountId: string, slot: MfaSlot): Buffer {
  return Buffer.from(`${DOMAIN}|${accountId.toLowerCase()}|${slot}`, 'utf8');
}

export function mfaSecretBox(master: MasterKey): MfaSecretBox {
  const key = Buffer.from(hkdfSync('sha256', master.key, Buffer.alloc(0), DOMAIN, 32));
  return {
    seal(accountId, slot, secret) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(aad(accountId, slot));
      const body = Buffer.concat([iv, cipher.update(secret, 'utf8'), cipher.final(), cipher.getAuthTag()]);
      return `${VERSION}:${master.id}:${body.toString('base64')}`;
    },
    open(accountId, slot, stored) {
      const [version, keyId, b64] = stored.split(':');
      if (version !== VERSION || keyId !== master.id || !b64) return null;
      const body = Buffer.from(b64, 'base64');
      if (body.length <= IV_BYTES + TAG_BYTES) return null;
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, body.subarray(0, IV_BYTES));
        decipher.setAAD(aad(accountId, slot));
        decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
        return Buffer.concat([decipher.update(body.subarray(IV_BYTES, body.length - TAG_BYTES)), decipher.final()]).toString('utf8');
      } catch {
        return null;
      }
    },
  };
}

/**
 * Seals every secret still stored in plain text (rows from before sealing existed). Runs at
 * start-up, as the system, audited; idempotent. Returns how many accounts were sealed.
 */
export async function sealPlainMfaSecrets(scopes: Scopes, box: MfaSecretBox, request: RequestContext): Promise<number> {
  return scopes.system('seal authenticator secrets stored in plain text', request, async (scope) => {
    const rows = await scope.tx
      .selectFrom('account_credentials')
      .select(['account_id', 'mfa_secret', 'mfa_pending_secret'])
      .where((eb) => eb.or([eb('mfa_secret', 'not like', `${VERSION}:%`), eb('mfa_pending_secret', 'not like', `${VERSION}:%`)]))
      .forUpdate()
      .execute();
    for (const r of rows) {
      const sealIfPlain = (value: string | null, slot: MfaSlot) => (value && !isSealed(value) ? box.seal(r.account_id, slot, value) : value);
      await scope.tx
        .updateTable('account_credentials')
        .set({ mfa_secret: sealIfPlain(r.mfa_secret, 'active'), mfa_pending_secret: sealIfPlain(r.mfa_pending_secret, 'pending') })
        .where('account_id', '=', r.account_id)
        .execute();
    }
    if (rows.length > 0) scope.audit({ action: 'mfa.secrets_sealed', objectType: 'account', details: { count: rows.length } });
    return rows.length;
  });
}
