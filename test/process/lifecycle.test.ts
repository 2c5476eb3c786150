import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { onPostgres } from '../harness';
import { post, runCli, startServer } from './spawn';

// The embedded database's promises: a clean stop on SIGTERM, nothing acknowledged lost on
// kill -9, and one process per data directory. (PostgreSQL runs do not repeat this: it is PGlite's.)
const dataDir = mkdtempSync(path.join(tmpdir(), 'confidant-life-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

const patient = (i: number) => ({
  givenName: 'Life', familyName: `Cycle${i}`, dateOfBirth: '1980-02-02', email: `life${i}@example.test`, password: 'tidal-granite-orchard-55',
});

// Each test starts real processes (the first on a fresh data directory, which runs initdb): a hang
// guard sized for a busy 2-core machine, not a speed target.
describe.skipIf(onPostgres)('embedded database lifecycle (PGlite)', { timeout: 120_000 }, () => {
  it('drains and stops cleanly on SIGTERM, and keeps the data for the next start', async () => {
    const s = await startServer({ DATA_DIR: dataDir });
    expect((await post(`${s.url}/api/auth/register`, patient(0))).status).toBe(201);
    s.child.kill('SIGTERM');
    const { code } = await s.exited;
    expect(code).toBe(0);

    const again = await startServer({ DATA_DIR: dataDir });
    try {
      const signIn = await post(`${again.url}/api/auth/sign-in`, { email: 'life0@example.test', password: 'tidal-granite-orchard-55' });
      expect(signIn.status).toBe(200);
      // A second process on the same data directory is refused, not allowed to corrupt it.
      const cli = await runCli(['migrate'], { DATA_DIR: dataDir });
      expect(cli.code).toBe(2);
      expect(cli.stderr).toMatch(/in use by another Confidant process/);
    } finally {
      again.child.kill('SIGTERM');
      expect((await again.exited).code).toBe(0);
    }
  });

  it('loses nothing it acknowledged when killed with SIGKILL mid-write', async () => {
    const s = await startServer({ DATA_DIR: dataDir });
    const acknowledged: number[] = [];
    let i = 1;
    const writers = Array.from({ length: 4 }, async () => {
      for (;;) {
        const n = i++;
        try {
          const r = await post(`${s.url}/api/auth/register`, patient(n));
          if (r.status === 201) acknowledged.push(n);
        } catch {
          return; // the process is gone
        }
      }
    });
    await new Promise((r) => setTimeout(r, 1500));
    s.child.kill('SIGKILL');
    await Promise.all(writers);
    await s.exited;
    expect(acknowledged.length).toBeGreaterThan(3);

    const again = await startServer({ DATA_DIR: dataDir });
    try {
      for (const n of acknowledged) {
        const r = await post(`${again.url}/api/auth/sign-in`, { email: `life${n}@example.test`, password: 'tidal-granite-orchard-55' });
        expect(r.status, `patient ${n} was acknowledged before the kill`).toBe(200);
      }
    } finally {
      again.child.kill('SIGTERM');
      await again.exited;
    }
    // And the audit chain survived the crash intact.
    const verify = await runCli(['audit', 'verify'], { DATA_DIR: dataDir });
    expect(verify.stdout + verify.stderr).toMatch(/Audit log intact/);
    expect(verify.code).toBe(0);
  });
});
