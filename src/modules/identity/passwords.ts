import { readFileSync } from 'node:fs';
import { hash, verify } from '@node-rs/argon2';
import { AppError } from '../../errors';

export const MIN_PASSWORD_LENGTH = 12;
export const MAX_PASSWORD_LENGTH = 256;

// OWASP's argon2id minimum: 19 MiB, 2 iterations, 1 lane.
// algorithm 2 = Argon2id (a const enum in the typings, which isolated modules cannot read).
const ARGON = { algorithm: 2, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

let common: Set<string> | undefined;
function commonPasswords(): Set<string> {
  common ??= new Set(
    readFileSync(new URL('./common-passwords.txt', import.meta.url), 'utf8').split('\n').filter(Boolean),
  );
  return common;
}

/** Why a password is refused, or null when it is acceptable. */
export function passwordProblem(password: string, personal: string[] = []): string | null {
  if (password.length < MIN_PASSWORD_LENGTH) return `Use at least ${MIN_PASSWORD_LENGTH} characters.`;
  if (password.length > MAX_PASSWORD_LENGTH) return `Use at most ${MAX_PASSWORD_LENGTH} characters.`;
  const lower = password.toLowerCase();
  if (/^(.)\1+$/.test(lower)) return 'Do not repeat a single character.';
  const list = commonPasswords();
  // A common password padded with digits or symbols ("password1234!") is still a common password.
  const core = lower.replace(/^[^a-z]+|[^a-z]+$/g, '');
  if (list.has(lower) || (core.length >= 4 && list.has(core))) {
    return 'This password is too common. Choose a longer phrase that is not easy to guess.';
  }
  for (const p of personal) {
    if (p.length >= 4 && lower.includes(p.toLowerCase())) return 'Do not use your name or email address in your password.';
  }
  return null;
}

export function assertAcceptablePassword(password: string, personal: string[] = [], field = 'password'): void {
  const problem = passwordProblem(password, personal);
  if (problem) throw new AppError('weak_password', problem, { issues: [{ path: field, message: problem }] });
}

export function hashPassword(password: string): Promise<string> {
  return hash(password, ARGON);
}

export async function verifyPassword(stored: string, password: string): Promise<boolean> {
  try {
    return await verify(stored, password);
  } catch {
    return false;
  }
}

// Verified against when the account does not exist, so that the answer takes the same time.
let dummyHash: Promise<string> | undefined;
export function dummyPasswordHash(): Promise<string> {
  dummyHash ??= hash('confidant-timing-equaliser-' + Math.random(), ARGON);
  return dummyHash;
}
