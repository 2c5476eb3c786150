import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAuditChain } from '../../src/audit/verify';
import { ConfigError, loadConfig } from '../../src/config';
import { sql } from '../../src/db';
import { openDatabase } from '../../src/db';
import { createService } from '../../src/server';
import { onPostgres, startTestService, testConfig, type TestService } from '../harness';
import { OWNER_ROLE, SERVICE_ROLE, urlFor } from '../pg-admin';
import { newPatient, newStaff, uniqueEmail } from '../fixtures';

// Each case reproduces a finding of the security review and shows it closed.
let service: TestService;
beforeAll(async () => {
  service = await startTestService();
});
afterAll(async () => {
  await service?.close();
});

const system = { kind: 'system' as const, id: null, role: null, sessionId: null, reason: 'test' };

describe('throttling holds under a burst', () => {
  it('counts 40 simultaneous wrong passwords one after another: at most 5 are tried', async () => {
    const p = await newPatient(service);
    const replies = await Promise.all(
      Array.from({ length: 40 }, (_, i) => service.client({ ip: `198.51.100.${i}` }).post('/api/auth/sign-in', { email: p.email, password: `wrong-guess-${i}-xxxx` })),
    );
    const tried = replies.filter((r) => r.status === 401).length;
    const refused = replies.filter((r) => r.status === 429).length;
    expect(tried).toBeLessThanOrEqual(5);
    expect(tried + refused).toBe(40);
  });
});

describe('the audit chain head follows real rows only', () => {
  it('ignores an INSERT that inserts nothing, even with a forged carried tail', async () => {
    await service.deps.scopes.system('test', { requestId: 't', clientIp: null, userAgent: null }, async (s) => s.audit({ action: 'test.one' }));
    await service.db.transaction(system, async (tx) => {
      const xid = (await sql<{ x: string }>`select txid_current()::text as x`.execute(tx)).rows[0]!.x;
      await sql`select set_config('confidant.audit_tail', ${`${xid}:1:${'00'.repeat(32)}`}, true)`.execute(tx);
      await sql`insert into audit_events (actor_kind, action, outcome) select 'system', 'x', 'success' where false`.execute(tx);
    });
    const r = await service.db.transaction(system, (tx) => verifyAuditChain(tx));
    expect(r.ok).toBe(true);
    // And the log still takes new events.
    await service.deps.scopes.system('test', { requestId: 't', clientIp: null, userAgent: null }, async (s) => s.audit({ action: 'test.two' }));
    expect((await service.db.transaction(system, (tx) => verifyAuditChain(tx))).ok).toBe(true);
  });
});

describe('the audit chain cannot be steered from a transaction', () => {
  it('ignores a carried tail set by the caller: the next events link to the real chain', async () => {
    await service.deps.scopes.system('test', { requestId: 't', clientIp: null, userAgent: null }, async (s) => s.audit({ action: 'test.before-forgery' }));
    const head = async () =>
      (await sql<{ seq: string; hash: Buffer }>`select seq::text as seq, hash from audit_events order by audit_events.seq desc limit 1`.execute(service.db.owner)).rows[0]!;
    const before = await head();
    await service.db.transaction(system, async (tx) => {
      const xid = (await sql<{ x: string }>`select txid_current()::text as x`.execute(tx)).rows[0]!.x;
      // A made-up predecessor far ahead of the real head, as the old carried tail would have trusted.
      await sql`select set_config('confidant.audit_tail', ${`${xid}:${Number(before.seq) + 1000}:${'ab'.repeat(32)}`}, true)`.execute(tx);
      await sql`insert into audit_events (actor_kind, action, outcome) values ('system', 'test.forged-1', 'success'), ('system', 'test.forged-2', 'success')`.execute(tx);
    });
    const all = (
      await sql<{ seq: string; action: string; prev_hash: Buffer; hash: Buffer }>`select seq::text as seq, action, prev_hash, hash from audit_events where audit_events.seq >= ${before.seq}::bigint order by audit_events.seq`.execute(
        service.db.owner,
      )
    ).rows;
    // Each event links to the one just before it, the forged ones included (other work may interleave).
    for (let i = 1; i < all.length; i++) {
      expect(Number(all[i]!.seq)).toBe(Number(all[i - 1]!.seq) + 1);
      expect(Buffer.from(all[i]!.prev_hash).equals(Buffer.from(all[i - 1]!.hash))).toBe(true);
    }
    const forged = all.filter((r) => r.action.startsWith('test.forged-'));
    expect(forged.map((r) => r.action)).toEqual(['test.forged-1', 'test.forged-2']);
    expect(Number(forged[0]!.seq)).toBeLessThan(Number(before.seq) + 1000);
    expect((await service.db.transaction(system, (tx) => verifyAuditChain(tx))).ok).toBe(true);
  });
});

describe('appointments: a clinician cannot create a link to a patient', () => {
  it('refuses a booking written by a clinician, and any change of an appointment’s parties', async () => {
    const victim = await newPatient(service);
    const gp = await newStaff(service, 'clinician');
    const asGp = { kind: 'clinician' as const, id: gp.id, role: null, sessionId: null, reason: null };
    await expect(
      service.db.transaction(asGp, (tx) =>
        tx
          .insertInto('appointments')
          .values({ patient_id: victim.id, clinician_id: gp.id, starts_at: new Date('2031-01-01T09:00:00Z'), ends_at: new Date('2031-01-01T09:10:00Z'), mode: 'video', reason: 'x' })
          .execute(),
      ),
    ).rejects.toThrow(/row-level security/);
    // Through system work an appointment exists; nobody may move it to another patient.
    const other = await newPatient(service);
    const { id } = await service.db.transaction(system, (tx) =>
      tx
        .insertInto('appointments')
        .values({ patient_id: other.id, clinician_id: gp.id, starts_at: new Date('2031-01-02T09:00:00Z'), ends_at: new Date('2031-01-02T09:10:00Z'), mode: 'video', reason: 'x' })
        .returning('id')
        .executeTakeFirstOrThrow(),
    );
    await expect(
      service.db.transaction(asGp, (tx) => tx.updateTable('appointments').set({ patient_id: victim.id }).where('id', '=', id).execute()),
    ).rejects.toThrow(/cannot change/);
    const seen = await service.db.transaction(asGp, (tx) => tx.selectFrom('patient_profiles').select('account_id').execute());
    expect(seen.map((r) => r.account_id)).not.toContain(victim.id);
  });
});

describe('half-signed-in sessions', () => {
  it('give the database no staff role: a DPO owing a code reads no audit events', async () => {
    const dpo = await newStaff(service, 'dpo');
    const pending = { kind: 'pending' as const, id: dpo.id, role: null, sessionId: null, reason: null };
    const rows = await service.db.transaction(pending, (tx) => tx.selectFrom('audit_events').select('seq').limit(5).execute());
    expect(rows).toEqual([]);
    const full = { kind: 'staff' as const, id: dpo.id, role: 'dpo', sessionId: null, reason: null };
    expect((await service.db.transaction(full, (tx) => tx.selectFrom('audit_events').select('seq').limit(5).execute())).length).toBeGreaterThan(0);
  });
});

describe('input the database would refuse is refused first, as 4xx', () => {
  it('answers a NUL character with 400, not 500', async () => {
    const res = await service.client().post('/api/auth/sign-in', { email: 'a\u0000b@example.test', password: 'x\u0000' });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_failed');
    const reg = await service.client().post('/api/auth/register', {
      givenName: 'Nul\u0000', familyName: 'B', dateOfBirth: '1990-01-01', email: uniqueEmail(), password: 'calm-harbour-lantern-99',
    });
    expect(reg.status).toBe(400);
  });

  it.each(['0000-01-01T00:00:00Z', '2030-01-01T09:00:00+23:59', '9999-12-31T23:59:59Z'])('answers the time %s with 400', async (startsAt) => {
    const gp = await newStaff(service, 'clinician');
    const res = await gp.client.post(`/api/clinicians/${gp.id}/availability/exceptions`, { startsAt, endsAt: '2031-01-01T10:00:00Z', reason: 'leave' });
    expect(res.status).toBe(400);
    expect(res.body.error.issues[0].path).toBe('startsAt');
  });
});

describe('production mode', () => {
  it('refuses the embedded database, whose one connection is a superuser', () => {
    expect(() => loadConfig({ CONFIDANT_MODE: 'production' })).toThrow(ConfigError);
    expect(() =>
      loadConfig({ CONFIDANT_MODE: 'production', DATABASE_URL: 'postgres://app@db/confidant', RECORDING_MASTER_KEY_FILE: '/etc/confidant/master.key' }),
    ).not.toThrow();
  });

  it('refuses production without a recording master key file (no key is ever made up there)', () => {
    expect(() => loadConfig({ CONFIDANT_MODE: 'production', DATABASE_URL: 'postgres://app@db/confidant' })).toThrow(/RECORDING_MASTER_KEY_FILE/);
  });
});

describe('the role requests run as', () => {
  // Development included: the owner's own policies admit everything, so a statement that ever ran
  // outside a transaction's switch to the service role would see every patient.
  it.runIf(onPostgres)('refuses to start, in development too, when the service connects as the owner of the tables', async () => {
    const name = (await sql<{ d: string }>`select current_database() as d`.execute(service.db.owner)).rows[0]!.d;
    const asOwner = await openDatabase({ kind: 'postgres', url: urlFor(OWNER_ROLE, name), ownerUrl: urlFor(OWNER_ROLE, name), poolSize: 2, serviceRole: SERVICE_ROLE });
    try {
      const config = testConfig({ CONFIDANT_MODE: 'development' });
      await expect(createService(config, { db: asOwner, webRoot: '/nonexistent-web-root', sweepRecordings: false })).rejects.toThrow(/owns tables/);
    } finally {
      await asOwner.close();
    }
  });
});
