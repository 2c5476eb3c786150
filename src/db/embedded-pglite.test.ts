import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedDatabaseLost, EmbeddedPGlite, InThreadPGlite, type EmbeddedPGliteEvent } from './embedded-pglite';
import { isUniqueViolation, openDatabase, sql } from './index';

// Each start of PGlite takes seconds on a busy machine (WebAssembly compile, recovery).
const SLOW = 120_000;
const scratch = mkdtempSync(path.join(tmpdir(), 'confidant-embedded-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
// Starting from the migrated template the test run built (test/global-setup.ts) takes half the
// time of an initdb, and every start here is a real one.
const template = () => readFile(path.resolve('.test-cache/pglite-template.tar')).then((b) => new Blob([b]));

const until = async (what: string, ok: () => boolean | Promise<boolean>, ms = 60_000) => {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('EmbeddedPGlite (PGlite on a worker thread)', () => {
  let db: EmbeddedPGlite;
  beforeAll(async () => {
    db = new EmbeddedPGlite({ loadDataDir: await template() });
    await db.waitReady;
    await db.exec(`
      create table patient (id int8 primary key, email text not null constraint patient_email_key unique, born date);
      insert into patient values (1, 'a@example.test', '1980-02-02');`);
  }, SLOW);
  afterAll(() => db.close());

  it('answers statements with rows as objects, int8 as numbers and dates as their ISO text', async () => {
    const r = await db.query('select id, email, born, $1::int8 as big from patient where id = $2', ['9007199254740991', 1]);
    expect(r.rows).toEqual([{ id: 1, email: 'a@example.test', born: '1980-02-02', big: 9007199254740991 }]);
    const ins = await db.query('insert into patient values ($1, $2, $3)', [2, 'b@example.test', '1990-03-04']);
    expect(ins.affectedRows).toBe(1);
    // Several statements without parameters: the last one's result.
    const last = await db.exec(`update patient set born = born where id = 2; select count(*)::int8 as n from patient`);
    expect(last.rows).toEqual([{ n: 2 }]);
    expect((await db.exec('set search_path = public')).rows).toEqual([]);
  });

  it('passes bytes and timestamps both ways', async () => {
    const r = await db.query('select $1::bytea as b, $2::timestamptz as t', [Buffer.from([1, 2, 255]), new Date('2026-01-02T03:04:05Z')]);
    const row = r.rows[0] as { b: Uint8Array; t: Date };
    expect([...row.b]).toEqual([1, 2, 255]);
    expect(row.t).toBeInstanceOf(Date);
    expect(row.t.toISOString()).toBe('2026-01-02T03:04:05.000Z');
  });

  it("rebuilds PostgreSQL's errors as Errors with their SQLSTATE, constraint and details", async () => {
    const err = await db.query('insert into patient values ($1, $2, null)', [3, 'a@example.test']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).toMatchObject({ code: '23505', constraint: 'patient_email_key', table: 'patient', severity: 'ERROR' });
    expect((err as Error).message).toMatch(/duplicate key value violates unique constraint "patient_email_key"/);
    expect((err as { detail: string }).detail).toMatch(/already exists/);
    expect(isUniqueViolation(err, 'patient_email_key')).toBe(true);
    expect(await db.exec('selec 1').catch((e: { code: string }) => e.code)).toBe('42601');
    expect(await db.query('select 1/0', []).catch((e: { code: string }) => e.code)).toBe('22012');
    const notNull = await db.query('insert into patient (id) values ($1)', [4]).catch((e: unknown) => e);
    expect(notNull).toMatchObject({ code: '23502', column: 'email' });
    // The connection is still usable.
    expect((await db.query('select 1 as one', [])).rows).toEqual([{ one: 1 }]);
  });

  it('leaves the event loop free while a statement runs', async () => {
    let longestGapMs = 0;
    let ticks = 0;
    let last = performance.now();
    const tick = () => {
      const now = performance.now();
      longestGapMs = Math.max(longestGapMs, now - last);
      last = now;
    };
    const timer = setInterval(() => {
      ticks++;
      tick();
    }, 10);
    const started = performance.now();
    try {
      await db.query('select pg_sleep(0.8)', []);
    } finally {
      clearInterval(timer);
      tick();
    }
    expect(performance.now() - started).toBeGreaterThan(750);
    // In-thread, the loop stands still for the whole 800 ms: no tick at all.
    expect(ticks).toBeGreaterThan(10);
    expect(longestGapMs).toBeLessThan(400);
  });

  it('refuses a parameter that cannot cross to the worker without losing the connection', async () => {
    await expect(db.query('select $1', [() => 1])).rejects.toThrow();
    expect((await db.query('select 2 as two', [])).rows).toEqual([{ two: 2 }]);
  });

  it('delivers notifications to every listener until each stops', async () => {
    const a: string[] = [];
    const b: string[] = [];
    const stopA = await db.listen('confidant_test', (p) => a.push(p));
    const stopB = await db.listen('confidant_test', (p) => b.push(p));
    await db.query(`select pg_notify('confidant_test', $1)`, ['one']);
    await until('both notified', () => a.length === 1 && b.length === 1);
    await stopA();
    await db.query(`select pg_notify('confidant_test', $1)`, ['two']);
    await until('b notified again', () => b.length === 2);
    await stopB();
    await db.query(`select pg_notify('confidant_test', $1)`, ['three']);
    await db.query('select 1', []); // a notification would have arrived before this answer
    expect(a).toEqual(['one']);
    expect(b).toEqual(['one', 'two']);
  });

  it('dumps its data directory and starts another database on disk from the dump', { timeout: SLOW }, async () => {
    const dump = await db.dumpDataDir();
    expect(dump).toBeInstanceOf(Uint8Array);
    expect(dump.byteLength).toBeGreaterThan(1_000_000);
    // (Every suite of the run starts from a dump in memory: test/harness.ts.)
    const onDisk = new EmbeddedPGlite({ dataDir: path.join(scratch, 'from-dump'), loadDataDir: dump });
    try {
      await onDisk.waitReady;
      expect((await onDisk.query('select email from patient order by id', [])).rows).toEqual([{ email: 'a@example.test' }, { email: 'b@example.test' }]);
    } finally {
      await onDisk.close();
    }
    // The dump seeded the directory once; it opens as it is afterwards.
    const reopened = new EmbeddedPGlite({ dataDir: path.join(scratch, 'from-dump') });
    try {
      await reopened.waitReady;
      expect((await reopened.query('select count(*) as n from patient', [])).rows).toEqual([{ n: 2 }]);
    } finally {
      await reopened.close();
    }
    // Closed (twice is fine): every call is refused.
    await reopened.close();
    await expect(reopened.query('select 1', [])).rejects.toThrow(/closed/);
    // A dump is never loaded over an existing database: that fails to open, and is not retried.
    const refused = new EmbeddedPGlite({ dataDir: path.join(scratch, 'from-dump'), loadDataDir: dump });
    await expect(refused.waitReady).rejects.toThrow(/already exists/);
    await expect(refused.query('select 1', [])).rejects.toThrow(/closed/);
    await refused.close();
  });

});

describe('EmbeddedPGlite whose worker dies', () => {
  const dataDir = path.join(scratch, 'crash');
  const events: EmbeddedPGliteEvent[] = [];
  let db: EmbeddedPGlite;
  beforeAll(async () => {
    db = new EmbeddedPGlite({ dataDir, loadDataDir: await template(), onEvent: (e) => events.push(e), respawnDelayMs: { first: 50, max: 1_000 } });
    await db.waitReady;
    await db.exec('create table visit (id int primary key)');
  }, SLOW);
  afterAll(() => db.close());

  it('rejects what was in flight and everything after with 08006, then comes back with what it committed', { timeout: SLOW }, async () => {
    await db.query('insert into visit values ($1)', [1]);
    const reconnected: string[] = [];
    const heard: string[] = [];
    await db.listen('confidant_crash', (p) => heard.push(p), () => reconnected.push('again'));
    const generation = db.generation;
    // A transaction open across the crash: what remains of it must never run on the new worker.
    await db.exec('begin');
    await db.query('insert into visit values ($1)', [2], { generation });
    const inFlight = db.query('select pg_sleep(0.5)', [], { generation });
    await db.terminateWorker();

    const lost = await inFlight.catch((e: unknown) => e);
    expect(lost).toBeInstanceOf(EmbeddedDatabaseLost);
    expect(lost).toMatchObject({ name: 'EmbeddedDatabaseLost', code: '08006' });
    // Until a new worker is up, every call is refused the same way.
    await expect(db.query('select 1', [])).rejects.toMatchObject({ code: '08006' });
    expect(events.map((e) => e.type)).toContain('lost');

    await until('the database is back', () => db.query('select 1', []).then(() => true, () => false));
    expect(db.generation).toBe(generation + 1);
    expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(['lost', 'respawning', 'respawned']));
    // The open transaction's next statement (even its COMMIT) is refused, not run outside it.
    await expect(db.query('insert into visit values ($1)', [3], { generation })).rejects.toMatchObject({ code: '08006' });
    await expect(db.exec('commit', { generation })).rejects.toMatchObject({ code: '08006' });
    // The committed row survived; the uncommitted one did not.
    expect((await db.query('select id from visit order by id', [])).rows).toEqual([{ id: 1 }]);
    // It listens again on its own, and says so.
    await until('listening again', () => reconnected.length === 1);
    await db.query(`select pg_notify('confidant_crash', 'after')`, []);
    await until('notified after the crash', () => heard.includes('after'));
  });

  it('keeps coming back after repeated crashes', { timeout: SLOW }, async () => {
    // The first crash was the test above: a second one, on the respawned worker.
    const before = db.generation;
    await db.terminateWorker();
    await until('the database is back', () => db.generation > before && db.query('select 1', []).then(() => true, () => false));
    expect((await db.query('select count(*) as n from visit', [])).rows).toEqual([{ n: 1 }]);
  });
});

describe('openDatabase on PGlite, on a worker and in-thread', () => {
  for (const thread of ['worker', 'main'] as const) {
    it(`runs transactions and keeps SQLSTATEs (${thread})`, { timeout: SLOW }, async () => {
      // The migrated template the test run built (test/global-setup.ts): it has the service role.
      const template = new Blob([await readFile(path.resolve('.test-cache/pglite-template.tar'))]);
      const db = await openDatabase({ kind: 'pglite', loadDataDir: template, serviceRole: 'confidant_app', thread });
      try {
        await sql`create table note (id int primary key); grant select on note to confidant_app`.execute(db.owner);
        await sql`insert into note values (${1})`.execute(db.owner);
        const err = await sql`insert into note values (${1})`.execute(db.owner).catch((e: unknown) => e);
        expect(isUniqueViolation(err, 'note_pkey')).toBe(true);
        const inTx = await db.transaction({ kind: 'system', id: null, role: null, sessionId: null, reason: 'test' }, async (tx) =>
          (await sql<{ n: number }>`select count(*) as n from note`.execute(tx)).rows,
        );
        expect(inTx).toEqual([{ n: 1 }]);
        const heard: string[] = [];
        const stop = await db.listen('confidant_note', (p) => heard.push(p));
        await sql`select pg_notify('confidant_note', ${'hello'})`.execute(db.owner);
        await until('notified', () => heard.length === 1);
        await stop();
        const dump = await db.dumpDataDir!();
        expect(dump.size).toBeGreaterThan(1_000_000);
      } finally {
        await db.close();
      }
    });
  }

  it('the in-thread engine answers as the worker does', { timeout: SLOW }, async () => {
    const d = new InThreadPGlite({ loadDataDir: await template() });
    await d.waitReady;
    try {
      expect((await d.query('select 1::int8 as n, $1::date as d', ['2020-01-02'])).rows).toEqual([{ n: 1, d: '2020-01-02' }]);
      expect((await d.exec('select 1; select 2 as two')).rows).toEqual([{ two: 2 }]);
    } finally {
      await d.close();
    }
  });
});
