import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executeAtCommit, sql, type Database, type Tx, type TxPrincipal } from '../../src/db';
import { READ_CONNECTIONS, ReadMultiplexer } from '../../src/db/pg-pipeline';
import { newPatient } from '../fixtures';
import { freshDatabase, onPostgres, startTestService, type TestService } from '../harness';
import { SERVICE_ROLE, urlFor, withAdmin } from '../pg-admin';

// Reads on PostgreSQL are multiplexed: many requests' read transactions travel in one batch on
// one connection (src/db/pg-pipeline.ts, ReadMultiplexer). These tests hold it to what one
// transaction per request guaranteed: each statement runs as its own principal, read-only, as
// the service role, gets its own rows and only its own error, and leaves nothing behind.

interface Seen {
  kind: string;
  id: string;
  sid: string;
  role: string;
  ro: string;
}

const whoAmI = (tx: Tx) =>
  sql<Seen>`select current_setting('confidant.principal_kind', true) as kind,
                   current_setting('confidant.principal_id', true) as id,
                   current_setting('confidant.session_id', true) as sid,
                   current_user as role,
                   current_setting('transaction_read_only') as ro`.execute(tx);

function somePrincipals(n: number): TxPrincipal[] {
  return Array.from({ length: n }, (_, i): TxPrincipal =>
    i % 5 === 0
      ? { kind: 'anonymous', id: null, role: null, sessionId: null, reason: null }
      : i % 5 === 1
        ? { kind: 'staff', id: randomUUID(), role: 'dpo', sessionId: randomUUID(), reason: null }
        : { kind: 'patient', id: randomUUID(), role: null, sessionId: randomUUID(), reason: null },
  );
}

describe('reads, concurrent and multiplexed', () => {
  let db: Database;
  beforeAll(async () => {
    db = await freshDatabase();
  });
  afterAll(async () => {
    await db?.close();
  });

  it('runs every statement of every read as its own principal, read-only, as the service role', async () => {
    const principals = somePrincipals(150);
    const reads = principals.map((p) =>
      db.transaction(
        p,
        async (tx) => {
          const first = (await whoAmI(tx)).rows[0]!;
          // Let other requests' reads run between this read's two statements.
          await new Promise((r) => setImmediate(r));
          const second = (await whoAmI(tx)).rows[0]!;
          return [first, second];
        },
        { readOnly: true },
      ),
    );
    // Writes going on at the same time, on the same pool.
    const writes = principals.slice(0, 20).map((p) => db.transaction(p, async (tx) => (await whoAmI(tx)).rows[0]!));
    const [readResults, writeResults] = await Promise.all([Promise.all(reads), Promise.all(writes)]);
    readResults.forEach((seen, i) => {
      const p = principals[i]!;
      for (const s of seen) {
        expect(s).toEqual({ kind: p.kind, id: p.id ?? '', sid: p.sessionId ?? '', role: SERVICE_ROLE, ro: 'on' });
      }
    });
    writeResults.forEach((s, i) => {
      const p = principals[i]!;
      expect(s).toEqual({ kind: p.kind, id: p.id ?? '', sid: p.sessionId ?? '', role: SERVICE_ROLE, ro: 'off' });
    });
  });

  it('gives a failing read its own error and the reads sent with it their own rows', async () => {
    const principals = somePrincipals(31);
    const bad = 17;
    const outcomes = await Promise.allSettled(
      principals.map((p, i) =>
        db.transaction(
          p,
          async (tx) => (await sql<{ id: string; q: number }>`select current_setting('confidant.principal_id', true) as id, 100 / ${i === bad ? 0 : i + 1}::int as q`.execute(tx)).rows[0]!,
          { readOnly: true },
        ),
      ),
    );
    outcomes.forEach((o, i) => {
      if (i === bad) {
        expect(o.status).toBe('rejected');
        expect((o as PromiseRejectedResult).reason).toMatchObject({ code: '22012' });
      } else {
        expect(o).toEqual({ status: 'fulfilled', value: { id: principals[i]!.id ?? '', q: Math.trunc(100 / (i + 1)) } });
      }
    });
    // Reads go on afterwards, as themselves.
    const p = principals[3]!;
    const after = await db.transaction(p, async (tx) => (await whoAmI(tx)).rows[0]!, { readOnly: true });
    expect(after.id).toBe(p.id);
  });

  it('refuses a write inside a read', async () => {
    const p = somePrincipals(3)[2]!;
    await expect(db.transaction(p, (tx) => sql`create temporary table t_write_in_read (x int)`.execute(tx), { readOnly: true })).rejects.toMatchObject({
      code: '25006', // read_only_sql_transaction
    });
  });
});

describe.runIf(onPostgres)('the read multiplexer (PostgreSQL)', () => {
  let db: Database;
  let dbName: string;
  beforeAll(async () => {
    db = await freshDatabase();
    dbName = (await sql<{ name: string }>`select current_database() as name`.execute(db.owner)).rows[0]!.name;
  });
  afterAll(async () => {
    await db?.close();
  });

  it('sends reads queued together in at most one batch per connection, and matches results by position', async () => {
    const pool = new pg.Pool({ connectionString: urlFor(SERVICE_ROLE, dbName), max: 10 });
    let connects = 0;
    const connect = pool.connect.bind(pool) as () => Promise<pg.PoolClient>;
    (pool as unknown as { connect: () => Promise<pg.PoolClient> }).connect = () => {
      connects++;
      return connect();
    };
    try {
      const mux = new ReadMultiplexer(pool, 10);
      const opening = (id: string) => [
        { text: "select where set_config('confidant.principal_id', $1, true) is null", values: [id] },
      ];
      const ids = Array.from({ length: 200 }, () => randomUUID());
      const results = await Promise.all(
        ids.map((id, i) => mux.run<{ id: string; n: number }>(opening(id), "select current_setting('confidant.principal_id') as id, $1::int as n", [i])),
      );
      results.forEach((r, i) => expect(r.rows).toEqual([{ id: ids[i], n: i }]));
      // 200 reads queued in one turn: READ_CONNECTIONS batches of 50, one connection each.
      expect(connects).toBe(READ_CONNECTIONS);
    } finally {
      await pool.end();
    }
  });

  it('leaves no connection inside a transaction after a failed batch', async () => {
    const outcomes = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) =>
        db.transaction(somePrincipals(3)[2]!, (tx) => sql`select 1 / ${i % 9}::int as q`.execute(tx), { readOnly: true }),
      ),
    );
    expect(outcomes.filter((o) => o.status === 'rejected')).toHaveLength(5); // i = 0, 9, 18, 27, 36
    const stuck = await withAdmin(async (c) => {
      const r = await c.query<{ n: number }>(
        "select count(*)::int as n from pg_stat_activity where datname = $1 and state like 'idle in transaction%'",
        [dbName],
      );
      return r.rows[0]!.n;
    });
    expect(stuck).toBe(0);
  });

  it('refuses statements held for a commit, and any statement once the read has ended', async () => {
    const p = somePrincipals(3)[2]!;
    await expect(db.transaction(p, (tx) => executeAtCommit(tx, { sql: 'select 1', parameters: [] }), { readOnly: true })).rejects.toThrow(/cannot hold statements/);
    let kept: Tx | undefined;
    await db.transaction(p, async (tx) => void (kept = tx), { readOnly: true });
    await expect(sql`select 1`.execute(kept!)).rejects.toThrow(/the read has ended/);
  });
});

describe('profiles read by many patients at once', () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startTestService();
  });
  afterAll(async () => {
    await service?.close();
  });

  it('gives every patient their own profile and nobody else’s', async () => {
    const patients = await Promise.all(Array.from({ length: 12 }, () => newPatient(service)));
    const replies = await Promise.all(patients.flatMap((p) => Array.from({ length: 6 }, () => p.client.get('/api/profile').then((r) => ({ p, r })))));
    for (const { p, r } of replies) {
      expect(r.status).toBe(200);
      expect(r.body.patientId).toBe(p.id);
      expect(r.body.email).toBe(p.email);
    }
  });
});
