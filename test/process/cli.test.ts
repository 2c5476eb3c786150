import { rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, sql } from '../../src/db';
import { onPostgres } from '../harness';
import { runCli, seededDataDir } from './spawn';

let dataDir: string;
let env: { DATA_DIR: string };
beforeAll(async () => {
  if (onPostgres) return;
  dataDir = await seededDataDir('confidant-cli-');
  env = { DATA_DIR: dataDir };
}, 60_000);
afterAll(() => dataDir && rmSync(dataDir, { recursive: true, force: true }));

// Each test starts real processes: a hang guard sized for a busy 2-core machine, not a speed target.
describe.skipIf(onPostgres)('operator CLI', { timeout: 120_000 }, () => {
  it('adds a staff member with a generated one-time password, and refuses bad input clearly', async () => {
    const ok = await runCli(['users', 'add', '--role', 'clinician', '--email', 'Dr.New@Example.test', '--name', 'Dr New'], env);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/Created clinician dr\.new@example\.test/);
    expect(ok.stdout).toMatch(/One-time password .*: \S{20}/);

    const dup = await runCli(['users', 'add', '--role', 'clinician', '--email', 'dr.new@example.test', '--name', 'Again'], env);
    expect(dup.code).toBe(2);
    expect(dup.stderr).toMatch(/already exists/);

    const badRole = await runCli(['users', 'add', '--role', 'surgeon', '--email', 'x@example.test', '--name', 'X'], env);
    expect(badRole.code).toBe(2);
    expect(badRole.stderr).toMatch(/--role must be/);
  });

  it('verifies the audit chain, and names the event an owner tampered with', async () => {
    const good = await runCli(['audit', 'verify'], env);
    expect(good.code, good.stderr).toBe(0);
    expect(good.stdout).toMatch(/Audit log intact: \d+ events/);

    const db = await openDatabase({ kind: 'pglite', dataDir: path.join(dataDir, 'pglite'), serviceRole: 'confidant_app' });
    try {
      await sql.raw(`alter table audit_events disable trigger audit_events_no_update;
        update audit_events set details = '{"role":"dpo"}' where seq = 1;
        alter table audit_events enable trigger audit_events_no_update;`).execute(db.owner);
    } finally {
      await db.close();
    }
    const bad = await runCli(['audit', 'verify'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/BROKEN at event #1 .*hash mismatch/);
  });

  it('prints help and refuses unknown commands with exit 2', async () => {
    const r = await runCli(['frobnicate'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown command "frobnicate"/);
  });
});
