import { describe, expect, it } from 'vitest';
import { AppError } from '../../errors';
import {
  assertAcceptablePassword,
  hashPassword,
  MAX_PASSWORD_LENGTH,
  MIN_PASSWORD_LENGTH,
  passwordProblem,
  verifyPassword,
} from './passwords';

const GOOD = 'quiet-river-stone-lamp-91';

describe('passwordProblem', () => {
  it('accepts a good passphrase', () => {
    expect(passwordProblem(GOOD)).toBeNull();
    expect(passwordProblem(GOOD, ['Ada', 'Lovelace', 'ada.l'])).toBeNull();
  });

  it('refuses one character too short, accepts the minimum length', () => {
    expect(MIN_PASSWORD_LENGTH).toBe(12);
    expect(passwordProblem('tqvzkmwpxrh')).toContain('at least 12');
    expect(passwordProblem('tqvzkmwpxrhb')).toBeNull();
  });

  it('refuses one character too long, accepts the maximum length', () => {
    const atMax = 'tqvzk-'.repeat(50).slice(0, MAX_PASSWORD_LENGTH);
    expect(atMax).toHaveLength(MAX_PASSWORD_LENGTH);
    expect(passwordProblem(atMax)).toBeNull();
    expect(passwordProblem(atMax + 'w')).toContain(`at most ${MAX_PASSWORD_LENGTH}`);
  });

  it.each(['password1234', 'qwertyuiop123', 'Password1234', 'QWERTY123456'])('refuses the common password %s', (pw) => {
    expect(passwordProblem(pw)).toContain('too common');
  });

  it.each(['Qwertyuiop123!', '!!!Letmein2024', '2024iloveyou!!', 'Password1234!?'])('refuses a padded common password %s', (pw) => {
    expect(passwordProblem(pw)).toContain('too common');
  });

  it('does not refuse a phrase merely because it contains a common word', () => {
    // "monkey" is on the list; a longer phrase around it is not a padded common password.
    expect(passwordProblem('brass-monkey-orbit-77')).toBeNull();
  });

  it.each(['aaaaaaaaaaaa', 'AAAAaaaaAAAAaaaa', '111111111111111'])('refuses one repeated character (%s)', (pw) => {
    expect(passwordProblem(pw)).toContain('repeat');
  });

  it('refuses a password containing the name or email local part, in any case', () => {
    expect(passwordProblem('zebedee-lantern-7', ['Zebedee', 'Marsh'])).toContain('name');
    expect(passwordProblem('lantern-MARSH-harbour', ['Zebedee', 'Marsh'])).toContain('name');
    expect(passwordProblem('my-zeb.m1980-lantern', ['Zebedee', 'Marsh', 'zeb.m1980'])).toContain('email');
  });

  it('ignores personal strings shorter than four characters', () => {
    expect(passwordProblem('albatross-orbit-77', ['Al', 'Bo'])).toBeNull();
  });
});

describe('assertAcceptablePassword', () => {
  it('throws weak_password with the reason, and nothing for a good one', () => {
    expect(() => assertAcceptablePassword(GOOD)).not.toThrow();
    let caught: unknown;
    try {
      assertAcceptablePassword('short');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(AppError);
    expect((caught as AppError).code).toBe('weak_password');
    expect((caught as AppError).status).toBe(422);
    expect((caught as AppError).message).toContain('at least 12');
  });
});

describe('hashPassword / verifyPassword', () => {
  it('hashes with argon2id at the OWASP parameters and verifies only the right password', async () => {
    const stored = await hashPassword(GOOD);
    expect(stored.startsWith('$argon2id$')).toBe(true);
    expect(stored).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(stored).not.toContain(GOOD);
    expect(await verifyPassword(stored, GOOD)).toBe(true);
    expect(await verifyPassword(stored, GOOD + ' ')).toBe(false);
    expect(await verifyPassword(stored, GOOD.toUpperCase())).toBe(false);
  });

  it('salts: the same password hashes differently each time, and both verify', async () => {
    const [a, b] = await Promise.all([hashPassword(GOOD), hashPassword(GOOD)]);
    expect(a).not.toBe(b);
    expect(await verifyPassword(a, GOOD)).toBe(true);
    expect(await verifyPassword(b, GOOD)).toBe(true);
  });

  it('answers false (never throws) for a malformed stored hash', async () => {
    await expect(verifyPassword('not-a-hash', GOOD)).resolves.toBe(false);
    await expect(verifyPassword('', GOOD)).resolves.toBe(false);
  });
});
