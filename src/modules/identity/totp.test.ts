import { describe, expect, it } from 'vitest';
import { hashRecoveryCode, matchTotpStep, newRecoveryCodes, newTotpSecret, otpauthUri, qrSvg, totpCodeAt } from './totp';

const STEP_MS = 30_000;
// The middle of a time step, so that ±1 step stays clear of the edges.
const T = 1_760_000_000_000 - (1_760_000_000_000 % STEP_MS) + STEP_MS / 2;
const stepAt = (ms: number) => Math.floor(ms / STEP_MS);

describe('TOTP', () => {
  it('makes a fresh base32 secret of 160 bits each time', () => {
    const a = newTotpSecret();
    const b = newTotpSecret();
    expect(a).toMatch(/^[A-Z2-7]{32}$/);
    expect(a).not.toBe(b);
  });

  it('verifies a code at its own time and names its time step', () => {
    const secret = newTotpSecret();
    const code = totpCodeAt(secret, T);
    expect(code).toMatch(/^\d{6}$/);
    expect(matchTotpStep(secret, code, T)).toBe(stepAt(T));
  });

  it('accepts one step of clock drift either way, and reports the code’s own step', () => {
    const secret = newTotpSecret();
    const code = totpCodeAt(secret, T);
    expect(matchTotpStep(secret, code, T + STEP_MS)).toBe(stepAt(T));
    expect(matchTotpStep(secret, code, T - STEP_MS)).toBe(stepAt(T));
    // A code from the next step, presented now, belongs to the next step (what replay protection compares).
    expect(matchTotpStep(secret, totpCodeAt(secret, T + STEP_MS), T)).toBe(stepAt(T) + 1);
  });

  it('refuses a code two steps away', () => {
    const secret = newTotpSecret();
    const code = totpCodeAt(secret, T);
    // Guard against the one-in-a-million case where the code happens to repeat nearby.
    const nearby = [-3, -2, -1, 1, 2, 3].map((k) => totpCodeAt(secret, T + k * STEP_MS));
    if (nearby.includes(code)) return;
    expect(matchTotpStep(secret, code, T + 2 * STEP_MS)).toBeNull();
    expect(matchTotpStep(secret, code, T - 2 * STEP_MS)).toBeNull();
  });

  it('refuses the code of another secret', () => {
    const secret = newTotpSecret();
    const other = newTotpSecret();
    const code = totpCodeAt(secret, T);
    const otherCodes = [-1, 0, 1].map((k) => totpCodeAt(other, T + k * STEP_MS));
    if (otherCodes.includes(code)) return; // a coincidence, not a bug
    expect(matchTotpStep(other, code, T)).toBeNull();
  });

  it.each(['12345', '1234567', 'abcdef', '12 345', ''])('refuses a malformed code %j', (code) => {
    const secret = newTotpSecret();
    expect(matchTotpStep(secret, code, T)).toBeNull();
  });

  it('builds an otpauth URI naming the issuer, account and secret, and a QR code as SVG', async () => {
    const secret = newTotpSecret();
    const uri = otpauthUri(secret, 'dr.jones@example.test', 'Confidant Clinic');
    expect(uri.startsWith('otpauth://totp/')).toBe(true);
    const u = new URL(uri);
    expect(u.searchParams.get('secret')).toBe(secret);
    expect(u.searchParams.get('issuer')).toBe('Confidant Clinic');
    expect(u.searchParams.get('digits')).toBe('6');
    expect(u.searchParams.get('period')).toBe('30');
    expect(decodeURIComponent(u.pathname)).toContain('dr.jones@example.test');
    const svg = await qrSvg(uri);
    expect(svg.startsWith('<svg')).toBe(true);
  });
});

describe('recovery codes', () => {
  it('makes ten distinct codes shaped xxxxx-xxxxx from an unambiguous alphabet', () => {
    const codes = newRecoveryCodes();
    expect(codes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    for (const c of codes) expect(c).toMatch(/^[a-hjkmnp-z2-9]{5}-[a-hjkmnp-z2-9]{5}$/);
    expect(newRecoveryCodes(3)).toHaveLength(3);
  });

  it('hashes a code the same however it is typed (case, surrounding and inner spaces)', () => {
    const h = hashRecoveryCode('k7m2p-x9qtr');
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(hashRecoveryCode('K7M2P-X9QTR')).toBe(h);
    expect(hashRecoveryCode('  k7m2p-x9qtr\n')).toBe(h);
    expect(hashRecoveryCode('k7m2p - x9qtr')).toBe(h);
    expect(h).not.toContain('k7m2p');
  });

  it('hashes different codes differently', () => {
    expect(hashRecoveryCode('k7m2p-x9qtr')).not.toBe(hashRecoveryCode('k7m2p-x9qts'));
    expect(hashRecoveryCode('k7m2p-x9qtr')).not.toBe(hashRecoveryCode('k7m2px9qtr'));
  });
});
