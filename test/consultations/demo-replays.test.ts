import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_PEOPLE } from '../../src/demo/demo-clinic';
import { seedDemo } from '../../src/cli/serve';
import { startTestService, testConfig, type TestClient, type TestService } from '../harness';

/**
 * "Demo clinic: at least two demo patients have past consultations with short recordings, so a
 * newcomer can replay one at once." A fresh database seeded the way `confidant serve` seeds it in
 * demo mode (src/cli/serve.ts); the demo patients sign in with the credentials the README lists
 * (src/demo/demo-clinic.ts) and replay their own recordings, and only their own.
 */
let service: TestService;
let seededReplays = 0;

/** The demo-mode startup of `confidant serve` (src/cli/serve.ts): the clinic, then its replays. */
async function seedLikeServe(s: TestService): Promise<number> {
  return (await seedDemo(s)).replays;
}

beforeAll(async () => {
  const config = testConfig({ CONFIDANT_DEMO: '1' });
  expect(config.demo).toBe(true);
  service = await startTestService({ config });
  seededReplays = await seedLikeServe(service);
});
afterAll(async () => {
  await service?.close();
});

const demoPatients = DEMO_PEOPLE.filter((p) => p.role === 'patient');
let address = 0;

interface SignedIn {
  client: TestClient;
  email: string;
  name: string;
  replays: { id: string; durationMs: number; sizeBytes: number; mediaType: string; mode: string; clinician: { id: string; displayName: string }; patient: { displayName: string } }[];
}

/** Signs a demo patient in with the demo credentials and reads their "Consultation replays". */
async function signInAndList(email: string): Promise<SignedIn> {
  const person = demoPatients.find((p) => p.email === email)!;
  const client = service.client({ ip: `198.51.100.${++address}` });
  const signIn = await client.post('/api/auth/sign-in', { email: person.email, password: person.password });
  expect(signIn.status, JSON.stringify(signIn.body)).toBe(200);
  const me = await client.get('/api/session');
  expect(me.body.account.email).toBe(person.email);
  const list = await client.get('/api/replays');
  expect(list.status, JSON.stringify(list.body)).toBe(200);
  return { client, email, name: `${person.givenName} ${person.familyName}`, replays: list.body.replays };
}

const EBML_MAGIC = Buffer.from([0x1a, 0x45, 0xdf, 0xa3]);

describe('demo clinic replays', () => {
  let withReplays: SignedIn[] = [];

  beforeAll(async () => {
    const all = [];
    for (const p of demoPatients) all.push(await signInAndList(p.email));
    withReplays = all.filter((p) => p.replays.length > 0);
  });

  it('at least two demo patients sign in and have a replay with a duration, a clinician and a mode', async () => {
    expect(seededReplays).toBeGreaterThanOrEqual(2);
    expect(withReplays.length).toBeGreaterThanOrEqual(2);
    const gps = DEMO_PEOPLE.filter((p) => p.role === 'clinician').map((p) => p.displayName);
    for (const p of withReplays) {
      for (const r of p.replays) {
        expect(r.durationMs, p.email).toBeGreaterThan(0);
        expect(r.sizeBytes, p.email).toBeGreaterThan(0);
        expect(gps, p.email).toContain(r.clinician.displayName);
        expect(['audio', 'video'], p.email).toContain(r.mode);
        expect(r.patient.displayName, p.email).toBe(p.name);
      }
    }
  });

  it('plays each one at once: a Range in the middle is 206 with those bytes, the whole is a webm', async () => {
    for (const p of withReplays) {
      const r = p.replays[0]!;
      const whole = await p.client.get(`/api/recordings/${r.id}/media`);
      expect(whole.status, p.email).toBe(200);
      expect(whole.headers['content-type'], p.email).toBe(r.mediaType);
      const bytes = whole.raw.rawPayload;
      expect(bytes.length, p.email).toBe(r.sizeBytes);
      expect(bytes.subarray(0, 4).equals(EBML_MAGIC), `${p.email}: ${bytes.subarray(0, 4).toString('hex')}`).toBe(true);

      const from = Math.floor(r.sizeBytes / 2);
      const to = Math.min(from + 4095, r.sizeBytes - 1);
      const mid = await p.client.request('GET', `/api/recordings/${r.id}/media`, undefined, { range: `bytes=${from}-${to}` });
      expect(mid.status, p.email).toBe(206);
      expect(mid.headers['content-range'], p.email).toBe(`bytes ${from}-${to}/${r.sizeBytes}`);
      expect(mid.raw.rawPayload.length, p.email).toBe(to - from + 1);
      expect(Buffer.compare(mid.raw.rawPayload, bytes.subarray(from, to + 1)), p.email).toBe(0);
    }
  });

  it("each patient sees only their own replays: another demo patient's is not found, nor its media", async () => {
    for (const p of withReplays) {
      const mine = new Set(p.replays.map((r) => r.id));
      for (const other of withReplays) {
        if (other === p) continue;
        for (const r of other.replays) {
          expect(mine.has(r.id), `${p.email} lists ${other.email}'s ${r.id}`).toBe(false);
          const meta = await p.client.get(`/api/recordings/${r.id}`);
          expect(meta.status, `${p.email} reads ${other.email}'s ${r.id}`).toBe(404);
          const media = await p.client.request('GET', `/api/recordings/${r.id}/media`, undefined, { range: 'bytes=0-99' });
          expect(media.status, `${p.email} plays ${other.email}'s ${r.id}`).toBe(404);
          expect(media.raw.rawPayload.includes(EBML_MAGIC)).toBe(false);
        }
      }
    }
  });

  it('a restart seeds no second set of replays', async () => {
    expect(await seedLikeServe(service)).toBe(0);
    for (const p of withReplays) {
      const again = await p.client.get('/api/replays');
      expect(again.body.replays.map((r: { id: string }) => r.id).sort()).toEqual(p.replays.map((r) => r.id).sort());
    }
  });
});
