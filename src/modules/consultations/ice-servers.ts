import { createHmac } from 'node:crypto';
import type { Consultation } from '../../contracts/consultations';

type IceServer = Consultation['rtc']['iceServers'][number];

export interface IceSettings {
  stunUrls: string[];
  turnUrls: string[];
  turnSecret: string | undefined;
  turnTtlSeconds: number;
}

/**
 * ICE servers for one caller. On one machine or one network none are needed; across the
 * internet a STUN server finds the public address and a TURN server relays when nothing else
 * gets through. TURN credentials follow the TURN REST convention (coturn's `use-auth-secret`):
 * the username is "<expiry>:<account id>", the password an HMAC of it under the shared secret,
 * so they expire on their own and the secret never reaches a browser.
 */
export function iceServersFor(settings: IceSettings, accountId: string, now = Date.now()): IceServer[] {
  const servers: IceServer[] = [];
  if (settings.stunUrls.length) servers.push({ urls: settings.stunUrls });
  if (settings.turnUrls.length && settings.turnSecret) {
    const username = `${Math.floor(now / 1000) + settings.turnTtlSeconds}:${accountId}`;
    const credential = createHmac('sha1', settings.turnSecret).update(username).digest('base64');
    servers.push({ urls: settings.turnUrls, username, credential });
  }
  return servers;
}
