import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { iceServersFor } from './ice-servers';

describe('ICE servers for a caller', () => {
  const base = { stunUrls: [], turnUrls: [], turnSecret: undefined, turnTtlSeconds: 3600 };

  it('offers none on one machine (host candidates are enough)', () => {
    expect(iceServersFor(base, 'a')).toEqual([]);
  });

  it('mints TURN credentials that expire and that the TURN server can check with the shared secret', () => {
    const now = Date.UTC(2026, 10, 22, 9, 0, 0);
    const servers = iceServersFor(
      { ...base, stunUrls: ['stun:stun.clinic.example:3478'], turnUrls: ['turns:turn.clinic.example:5349'], turnSecret: 's3cret' },
      '5b1d1f7e-0000-4000-8000-000000000001',
      now,
    );
    expect(servers[0]).toEqual({ urls: ['stun:stun.clinic.example:3478'] });
    const turn = servers[1]!;
    expect(turn.username).toBe(`${now / 1000 + 3600}:5b1d1f7e-0000-4000-8000-000000000001`);
    expect(turn.credential).toBe(createHmac('sha1', 's3cret').update(turn.username!).digest('base64'));
    // The secret itself never reaches the browser.
    expect(JSON.stringify(servers)).not.toContain('s3cret');
  });

  it('offers no TURN server without a secret', () => {
    expect(iceServersFor({ ...base, turnUrls: ['turn:t.example'] }, 'a')).toEqual([]);
  });
});
