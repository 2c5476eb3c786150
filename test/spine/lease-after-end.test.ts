import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executeAtCommit, sql, type Database, type Tx, type TxPrincipal } from '../../src/db';
import { freshDatabase, onPostgres } from '../harness';
import { withAdmin } from '../pg-admin';

// A transaction's handle must be dead once the transaction has ended. Otherwise a stray
// statement (one branch of a Promise.all still querying after another branch threw) runs in
// whichever transaction holds the connection next: another request's, as another principal.
// The default suite runs on the embedded driver, so this holds there as on PostgreSQL.

let db: Database;
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => {
  await db?.close();
});

const patient = (): TxPrincipal => ({ kind: 'patient', id: randomUUID(), role: null, sessionId: randomUUID(), reason: null });
const whoAmI = (tx: Tx) => sql<{ id: string }>`select current_setting('confidant.principal_id', true) as id`.execute(tx);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a transaction handle after its transaction', () => {
  it('refuses statements once the transaction has committed', async () => {
    let kept: Tx | undefined;
    await db.transaction(patient(), async (tx) => {
      kept = tx;
      await whoAmI(tx);
    });
    await expect(whoAmI(kept!)).rejects.toThrow(/has ended/);
  });

  it("never runs a stray branch of a failed transaction inside the next caller's transaction", async () => {
    const first = patient();
    const second = patient();
    let stray: unknown;
    const failed = db.transaction(first, async (tx) => {
      await Promise.all([
        Promise.reject(new Error('one branch failed')),
        (async () => {
          // Still working after its sibling threw and the transaction rolled back.
          await sleep(50);
          stray = await whoAmI(tx).then(
            (r) => r.rows[0]?.id,
            (e: unknown) => e,
          );
        })(),
      ]);
    });
    await expect(failed).rejects.toThrow('one branch failed');
    // The next caller holds the connection while the stray statement is issued.
    const seen = await db.transaction(second, async (tx) => {
      await sleep(150);
      return (await whoAmI(tx)).rows[0]?.id;
    });
    expect(seen).toBe(second.id);
    expect(stray, "the stray statement ran as the next caller's principal").not.toBe(second.id);
    expect(stray).toBeInstanceOf(Error);
    expect(String(stray)).toMatch(/has ended/);
  });

  // PostgreSQL sends a transaction's opening (BEGIN, the principal) with its first statement.
  it.runIf(onPostgres)('runs nothing more once the batch carrying the opening failed before the server saw it', async () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    let after: unknown;
    const outcome = await db
      .transaction(patient(), async (tx) => {
        // The value cannot be encoded: nothing is sent, not even BEGIN. The caller carries on.
        await expect(sql`select ${circular}::jsonb as j`.execute(tx)).rejects.toThrow(/circular/i);
        after = await whoAmI(tx).then(
          (r) => r.rows[0]?.id,
          (e: unknown) => e,
        );
      })
      .then(
        () => 'committed',
        (e: unknown) => e,
      );
    expect(after, 'a statement ran outside any transaction, as nobody').toBeInstanceOf(Error);
    expect(String(after)).toMatch(/could not be opened/);
    expect(outcome).toBeInstanceOf(Error);
    // The pool is sound afterwards.
    const p = patient();
    expect(await db.transaction(p, async (tx) => (await whoAmI(tx)).rows[0]?.id)).toBe(p.id);
  });

  // The ROLLBACK of a failed transaction travels with the statements held for its end; one of
  // them failing makes the server skip the ROLLBACK, leaving the connection in an aborted
  // transaction. It must be closed, never handed to the next caller.
  it.runIf(onPostgres)('never pools a connection whose ROLLBACK did not run', async () => {
    const database = (await sql<{ d: string }>`select current_database() as d`.execute(db.owner)).rows[0]!.d;
    const failed = db.transaction(patient(), async (tx) => {
      await whoAmI(tx);
      await executeAtCommit(tx, { sql: 'select 1 / 0', parameters: [] });
      throw new Error('the caller failed');
    });
    await expect(failed).rejects.toThrow('the caller failed');
    const stuck = await withAdmin(async (c) => {
      const r = await c.query<{ n: number }>(
        "select count(*)::int as n from pg_stat_activity where datname = $1 and state like 'idle in transaction%'",
        [database],
      );
      return r.rows[0]!.n;
    });
    expect(stuck, 'connections left inside an aborted transaction').toBe(0);
    // The next callers are served as themselves.
    for (let i = 0; i < 12; i++) {
      const p = patient();
      expect(await db.transaction(p, async (tx) => (await whoAmI(tx)).rows[0]?.id)).toBe(p.id);
    }
  });
});
