import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestClient, type TestService } from '../harness';
import { newPatient, type PatientHandle } from '../fixtures';

/**
 * Model-based: random interleavings of patients on several devices signing in and out,
 * reading and renaming, and revoking sessions (their own and others'), checked call by call
 * against a reference model of who owns what. Any disagreement is a failure.
 */
const PATIENTS = 3;
const DEVICES = 2;
const RUNS = Number(process.env.MODEL_RUNS ?? 25);

interface Model {
  names: string[];
  /** live session id per patient per device, or null */
  sessions: (string | null)[][];
  passwords: string[];
}

interface Real {
  service: TestService;
  patients: PatientHandle[];
  devices: TestClient[][];
}

const NAMES = ['Ash', 'Birch', 'Cedar', 'Damson', 'Elm'];
const PASSWORDS = ['harbour-kettle-quartz-11', 'meadow-lantern-copper-22', 'orchard-violin-granite-33'];

async function currentSessionId(c: TestClient): Promise<string | null> {
  const r = await c.get('/api/account/sessions');
  if (r.status !== 200) return null;
  return r.body.sessions.find((s: { current: boolean }) => s.current)?.id ?? null;
}

function assertNoForeignData(body: unknown, p: number, real: Real) {
  const text = JSON.stringify(body ?? '');
  real.patients.forEach((other, i) => {
    if (i === p) return;
    expect(text).not.toContain(other.id);
    expect(text).not.toContain(other.email);
  });
}

class SignIn implements fc.AsyncCommand<Model, Real> {
  constructor(readonly p: number, readonly d: number) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const c = r.devices[this.p]![this.d]!;
    const res = await c.post('/api/auth/sign-in', { email: r.patients[this.p]!.email, password: m.passwords[this.p] });
    expect(res.status).toBe(200);
    m.sessions[this.p]![this.d] = await currentSessionId(c);
    expect(m.sessions[this.p]![this.d]).not.toBeNull();
  }
  toString = () => `signIn(p${this.p}, d${this.d})`;
}

class SignOut implements fc.AsyncCommand<Model, Real> {
  constructor(readonly p: number, readonly d: number) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const res = await r.devices[this.p]![this.d]!.post('/api/auth/sign-out');
    expect(res.status).toBe(200);
    m.sessions[this.p]![this.d] = null;
  }
  toString = () => `signOut(p${this.p}, d${this.d})`;
}

class ReadProfile implements fc.AsyncCommand<Model, Real> {
  constructor(readonly p: number, readonly d: number) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const res = await r.devices[this.p]![this.d]!.get('/api/profile');
    if (m.sessions[this.p]![this.d]) {
      expect(res.status).toBe(200);
      expect(res.body.patientId).toBe(r.patients[this.p]!.id);
      expect(res.body.givenName).toBe(m.names[this.p]);
    } else {
      expect(res.status).toBe(401);
    }
    assertNoForeignData(res.body, this.p, r);
  }
  toString = () => `readProfile(p${this.p}, d${this.d})`;
}

class Rename implements fc.AsyncCommand<Model, Real> {
  constructor(readonly p: number, readonly d: number, readonly name: string) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const res = await r.devices[this.p]![this.d]!.patch('/api/profile', { givenName: this.name });
    if (m.sessions[this.p]![this.d]) {
      expect(res.status).toBe(200);
      m.names[this.p] = this.name;
    } else {
      expect([401, 403]).toContain(res.status);
    }
  }
  toString = () => `rename(p${this.p}, d${this.d}, ${this.name})`;
}

class RevokeSession implements fc.AsyncCommand<Model, Real> {
  constructor(readonly p: number, readonly d: number, readonly q: number, readonly e: number) {}
  check = (m: Readonly<Model>) => m.sessions[this.q]![this.e] !== null;
  async run(m: Model, r: Real) {
    const target = m.sessions[this.q]![this.e]!;
    const res = await r.devices[this.p]![this.d]!.delete(`/api/account/sessions/${target}`);
    const mine = m.sessions[this.p]![this.d] !== null;
    if (!mine) {
      expect([401, 403]).toContain(res.status);
    } else if (this.p === this.q) {
      expect(res.status).toBe(200);
      m.sessions[this.q]![this.e] = null;
    } else {
      expect(res.status).toBe(404); // someone else's session: exactly like a missing one
    }
    assertNoForeignData(res.body, this.p, r);
  }
  toString = () => `revoke(p${this.p}, d${this.d} → p${this.q}, d${this.e})`;
}

class ChangePassword implements fc.AsyncCommand<Model, Real> {
  constructor(readonly p: number, readonly d: number) {}
  check = (m: Readonly<Model>) => m.sessions[this.p]![this.d] !== null;
  async run(m: Model, r: Real) {
    const next = m.passwords[this.p] === PASSWORDS[this.p] ? `${PASSWORDS[this.p]}-x` : PASSWORDS[this.p]!;
    const c = r.devices[this.p]![this.d]!;
    const res = await c.post('/api/account/password', { currentPassword: m.passwords[this.p], newPassword: next });
    expect(res.status).toBe(200);
    m.passwords[this.p] = next;
    actualPasswords[this.p] = next;
    for (let e = 0; e < DEVICES; e++) m.sessions[this.p]![e] = null;
    m.sessions[this.p]![this.d] = await currentSessionId(c);
  }
  toString = () => `changePassword(p${this.p}, d${this.d})`;
}

let service: TestService;
let base: PatientHandle[];
/** The real passwords now, carried from one sequence to the next. */
let actualPasswords: string[] = [...PASSWORDS];
beforeAll(async () => {
  service = await startTestService();
  base = [];
  for (let i = 0; i < PATIENTS; i++) base.push(await newPatient(service, { password: PASSWORDS[i], givenName: NAMES[i] }));
});
afterAll(async () => {
  await service?.close();
});

describe('model-based: sessions and profiles across patients and devices', () => {
  it(`agrees with the reference model over ${RUNS} random sequences`, async () => {
    const idx = (n: number) => fc.integer({ min: 0, max: n - 1 });
    const commands = [
      fc.tuple(idx(PATIENTS), idx(DEVICES)).map(([p, d]) => new SignIn(p, d)),
      fc.tuple(idx(PATIENTS), idx(DEVICES)).map(([p, d]) => new SignOut(p, d)),
      fc.tuple(idx(PATIENTS), idx(DEVICES)).map(([p, d]) => new ReadProfile(p, d)),
      fc.tuple(idx(PATIENTS), idx(DEVICES), fc.constantFrom(...NAMES)).map(([p, d, n]) => new Rename(p, d, n)),
      fc.tuple(idx(PATIENTS), idx(DEVICES), idx(PATIENTS), idx(DEVICES)).map(([p, d, q, e]) => new RevokeSession(p, d, q, e)),
      fc.tuple(idx(PATIENTS), idx(DEVICES)).map(([p, d]) => new ChangePassword(p, d)),
    ];
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 14 }), async (cmds) => {
        // Each sequence starts from a known state: everyone signed out, original names and passwords.
        const devices = base.map(() => Array.from({ length: DEVICES }, () => service.client()));
        const model: Model = {
          names: [...NAMES.slice(0, PATIENTS)],
          sessions: base.map(() => Array(DEVICES).fill(null)),
          passwords: [...PASSWORDS],
        };
        await service.db.transaction({ kind: 'system', id: null, role: null, sessionId: null, reason: 'test: reset model state' }, async (tx) => {
          await tx.updateTable('sessions').set({ revoked_at: new Date(), revoked_reason: 'test reset' }).where('revoked_at', 'is', null).execute();
          for (let i = 0; i < PATIENTS; i++) {
            await tx.updateTable('patient_profiles').set({ given_name: NAMES[i]! }).where('account_id', '=', base[i]!.id).execute();
          }
        });
        service.deps.sessions.clear();
        // Passwords changed in an earlier sequence are set back through the API, as a person would.
        for (let i = 0; i < PATIENTS; i++) {
          if (actualPasswords[i] === PASSWORDS[i]) continue;
          const c = service.client();
          expect((await c.post('/api/auth/sign-in', { email: base[i]!.email, password: actualPasswords[i] })).status).toBe(200);
          expect((await c.post('/api/account/password', { currentPassword: actualPasswords[i], newPassword: PASSWORDS[i] })).status).toBe(200);
          actualPasswords[i] = PASSWORDS[i]!;
          await c.post('/api/auth/sign-out');
        }
        await fc.asyncModelRun(() => ({ model, real: { service, patients: base, devices } }), cmds);
      }),
      { numRuns: RUNS, seed: process.env.MODEL_SEED ? Number(process.env.MODEL_SEED) : undefined },
    );
  }, 240_000);
});
