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

  it('lists features and switches one off and on with a reason, audited as the operator', async () => {
    const list = await runCli(['features', 'list'], env);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^replay_playback\s+on\s/m);

    const noReason = await runCli(['features', 'off', 'replay_playback'], env);
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toMatch(/--reason is required/);
    const unknown = await runCli(['features', 'off', 'teleportation', '--reason', 'no such thing'], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no feature named "teleportation"/);

    const off = await runCli(['features', 'off', 'replay_playback', '--reason', 'suspected leak'], env);
    expect(off.code, off.stderr).toBe(0);
    expect(off.stdout).toMatch(/replay_playback is now off \(suspected leak\)/);
    expect((await runCli(['features', 'list'], env)).stdout).toMatch(/^replay_playback\s+OFF\s.*system\(operator: features off\): suspected leak$/m);

    const on = await runCli(['features', 'on', 'replay_playback', '--reason', 'false alarm'], env);
    expect(on.code, on.stderr).toBe(0);
    const db = await openDatabase({ kind: 'pglite', dataDir: path.join(dataDir, 'pglite'), serviceRole: 'confidant_app' });
    try {
      const system = { kind: 'system' as const, id: null, role: null, sessionId: null, reason: 'test: read audit' };
      const events = await db.transaction(system, (tx) =>
        tx.selectFrom('audit_events').select(['action', 'system_reason', 'object_id', 'details']).where('object_type', '=', 'feature').orderBy('seq').execute(),
      );
      expect(events.map((e) => [e.action, e.system_reason, e.object_id, JSON.parse(e.details!).reason])).toEqual([
        ['feature.disable', 'operator: features off', 'replay_playback', 'suspected leak'],
        ['feature.enable', 'operator: features on', 'replay_playback', 'false alarm'],
      ]);
    } finally {
      await db.close();
    }
  });

  it('prints help and refuses unknown commands with exit 2', async () => {
    const r = await runCli(['frobnicate'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown command "frobnicate"/);
  });
});
