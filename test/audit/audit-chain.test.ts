import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScopes } from '../../src/access/scope';
import { canonicalAuditText, verifyAuditChain } from '../../src/audit/verify';
import { sql, type Database } from '../../src/db';
import { freshDatabase } from '../harness';

let db: Database;
const request = { requestId: 'req-1', clientIp: '203.0.113.9', userAgent: 'Tester/1.0 ✓ naïve' };
const patient = '33333333-3333-4333-8333-333333333333';

beforeAll(async () => {
  db = await freshDatabase();
  const scopes = createScopes(db);
  for (let i = 0; i < 12; i++) {
    await scopes.system('test: audit chain', request, async (scope) => {
      scope.audit({ action: 'test.write', objectType: 'thing', objectId: `obj-${i}`, patientId: i % 2 ? patient : null, details: { i, note: 'ünïcødé ✓' } });
      if (i % 3 === 0) scope.audit({ action: 'test.second', outcome: 'failure' });
    });
  }
});
afterAll(async () => {
  await db?.close();
});

const system = { kind: 'system' as const, id: null, role: null, sessionId: null, reason: 'test: verify' };
const verify = () => db.transaction(system, (tx) => verifyAuditChain(tx, 5));

/** Runs statements as the owner with the immutability trigger off: what an attacker with owner rights could do. */
async function asOwnerWithoutGuards(statement: string) {
  await db.owner.connection().execute(async (conn) => {
    await sql.raw(`begin;
      select set_config('confidant.principal_kind', 'system', true);
      alter table audit_events no force row level security;
      alter table audit_events disable trigger audit_events_no_update;
      alter table audit_events disable trigger audit_events_chain;
      ${statement};
      alter table audit_events enable trigger audit_events_no_update;
      alter table audit_events enable trigger audit_events_chain;
      alter table audit_events force row level security;
      commit;`).execute(conn);
  });
}

describe('hash-chained audit log', () => {
  it('verifies an untouched chain across pages', async () => {
    const r = await verify();
    expect(r).toMatchObject({ ok: true, checked: 16, headSeq: 16 });
  });

  it('computes the same canonical text in TypeScript as the database does', async () => {
    const rows = await db.transaction(system, async (tx) =>
      (
        await sql<{ seq: number; sqltext: string }>`select seq, confidant_audit_canonical(e) as sqltext from audit_events e order by seq`.execute(tx)
      ).rows,
    );
    const full = await db.transaction(system, (tx) => tx.selectFrom('audit_events').selectAll().orderBy('seq').execute());
    expect(rows.length).toBe(full.length);
    for (let i = 0; i < rows.length; i++) expect(canonicalAuditText(full[i]!)).toBe(rows[i]!.sqltext);
  });

  it('names the first altered event', async () => {
    await asOwnerWithoutGuards(`update audit_events set action = 'nothing.to.see' where seq = 7`);
    const r = await verify();
    expect(r.ok).toBe(false);
    expect(r.firstBad).toMatchObject({ seq: 7, problem: 'hash_mismatch' });
    expect(r.checked).toBe(6);
  });

  it('names a deleted event by the gap it leaves, and a removed tail by the head', async () => {
    const fresh = await freshDatabase();
    try {
      const scopes = createScopes(fresh);
      for (let i = 0; i < 5; i++) await scopes.system('test', request, async (s) => s.audit({ action: `a${i}` }));
      const v = () => fresh.transaction(system, (tx) => verifyAuditChain(tx));
      const del = async (where: string) =>
        fresh.owner.connection().execute(async (conn) => {
          await sql.raw(`begin; select set_config('confidant.principal_kind','system',true);
            alter table audit_events no force row level security;
            alter table audit_events disable trigger audit_events_no_update;
            delete from audit_events where ${where};
            alter table audit_events enable trigger audit_events_no_update;
            alter table audit_events force row level security; commit;`).execute(conn);
        });
      await del('seq = 5');
      expect((await v()).firstBad).toMatchObject({ problem: 'missing_tail', seq: 5 });
      await del('seq = 3');
      expect((await v()).firstBad).toMatchObject({ problem: 'sequence_gap', seq: 4 });
    } finally {
      await fresh.close();
    }
  });

  it('assigns sequence, time and hash itself, whatever the writer sends', async () => {
    await db.transaction(system, (tx) =>
      tx
        .insertInto('audit_events')
        .values({ seq: 999, actor_kind: 'system', system_reason: 'x', action: 'forge', outcome: 'success', hash: Buffer.alloc(32), prev_hash: Buffer.alloc(32), occurred_at: new Date(0) } as never)
        .execute(),
    );
    const last = await db.transaction(system, (tx) => tx.selectFrom('audit_events').selectAll().orderBy('seq', 'desc').limit(1).executeTakeFirstOrThrow());
    expect(last.seq).toBe(17);
    expect(last.occurred_at.getTime()).toBeGreaterThan(Date.now() - 60_000);
    expect(Buffer.from(last.hash).equals(Buffer.alloc(32))).toBe(false);
  });
});
