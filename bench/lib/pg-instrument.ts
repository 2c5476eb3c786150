import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { cpuProfiler } from './cpu-profile';

/**
 * Counts and times what the process sends to PostgreSQL, by wrapping pg's Client.query and
 * Pool.connect (the service's pool is internal to src/db; pg is one module instance, so the
 * wrapper sees every query). No server-side statement logging is needed.
 *
 * Off by default: when off, the wrappers only test a flag. Turned on for a short profiling
 * run after the measured runs, so the headline figures are taken without it.
 */

export interface StatementStats {
  kind: string;
  count: number;
  totalMs: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
}

export interface PgProfile {
  wallMs: number;
  queries: number;
  statements: StatementStats[];
  poolAcquire: { count: number; meanMs: number; p99Ms: number };
  /** BEGIN sent → COMMIT answered, per transaction. */
  transaction: { count: number; meanMs: number; p99Ms: number };
  /** The same, for transactions that inserted audit events (with group commit: one per batch, which its requests wait for). */
  auditTransaction: { count: number; meanMs: number; p99Ms: number };
  /**
   * Audit INSERT answered → COMMIT answered: a lower bound of how long each audited transaction
   * holds the single audit_chain_head row lock (it holds it from somewhere inside the INSERT).
   * Every audited transaction in the database queues on that lock, so totalMs / wallMs is the
   * fraction of time the lock was taken: near 1.0 means the lock is the bottleneck.
   */
  chainLockHold: { count: number; meanMs: number; p99Ms: number; totalMs: number };
  /** Audit INSERT statements and the rows they carried (rows / inserts = group-commit batch size). */
  audit: { inserts: number; rows: number };
  /**
   * Statements that travelled in front of another one in the same round trip (the service's
   * pipelining: BEGIN, the principal settings, statements held for COMMIT). Not in `queries`.
   */
  batchedStatements?: number;
  /** Those statements by kind. */
  batchedKinds?: Record<string, number>;
  /**
   * Multiplexed read batches (src/db/pg-pipeline.ts, ReadMultiplexer): each carries several
   * reads, each its own BEGIN READ ONLY … COMMIT; counted as one round trip.
   */
  readBatches?: { batches: number; reads: number };
  /** The first text seen of each kind of statement (up to 2,000 characters), to see what was sent. */
  examples?: Record<string, string>;
}

interface Classified {
  kind: string;
  begins: boolean;
  ends: boolean;
}

const classified = new Map<string, Classified>();

/** Memoised: the same few statement texts come back thousands of times. */
function classify(text: string): Classified {
  let c = classified.get(text);
  if (!c) {
    if (classified.size > 10_000) classified.clear();
    classified.set(text, (c = classifyText(text)));
  }
  return c;
}

/** Statement kinds; robust to BEGIN being sent alone or together with the principal settings. */
function classifyText(text: string): Classified {
  const s = text.replace(/\s+/g, ' ').trim().toLowerCase();
  const begins = /^(begin|start transaction)\b/.test(s);
  const ends = /(^|;\s*)(commit|rollback|end)\s*;?$/.test(s);
  const rest = begins ? s.replace(/^(begin|start transaction)[^;]*;?\s*/, '') : s;
  let kind: string;
  if (rest === '') kind = 'BEGIN';
  else if (s === 'commit') kind = 'COMMIT';
  else if (s === 'rollback') kind = 'ROLLBACK';
  else if (rest.startsWith("select set_config('role'") || (rest.startsWith('select') && rest.includes("set_config('role'"))) {
    kind = begins ? 'BEGIN + set role + principal' : 'set role + principal';
  }
  else if (rest.includes('confidant_resolve_session')) kind = 'resolve session (cache miss)';
  else if (rest.startsWith('insert into "audit_events"') || rest.startsWith('insert into audit_events')) kind = 'INSERT audit event(s)';
  else if (rest.includes('from "patient_profiles"')) kind = 'SELECT profile';
  else if (rest.includes('from bench_profiles')) kind = 'SELECT row (baseline)';
  // Appointments (bench:booking); none of these texts occur in bench:read's targets.
  else if (rest.includes('confidant_taken_slots')) kind = 'SELECT taken slots';
  else if (rest.startsWith('insert into "appointments"')) kind = 'INSERT appointment';
  else if (rest.startsWith('insert into "notifications"')) kind = 'INSERT notification';
  else if (rest.startsWith('insert into "outbox"')) kind = 'INSERT outbox';
  else if (rest.includes('from "appointments"') && rest.includes('count(')) kind = 'SELECT count of future bookings';
  else if (rest.includes('from "appointments"') && rest.includes(' for update')) kind = 'SELECT appointment FOR UPDATE';
  else if (rest.includes('from "appointments"')) kind = 'SELECT appointments ⋈ clinician';
  else if (rest.startsWith('with mine as')) kind = 'SELECT my appointments (list)';
  else if (rest.includes('from appointments a') && rest.includes('join accounts c')) kind = 'SELECT appointments (bare list read)';
  else if (rest.includes('from "availability_rules"')) kind = 'SELECT availability_rules';
  else if (rest.includes('from "availability_exceptions"')) kind = 'SELECT availability_exceptions';
  else if (rest.includes('from "accounts"') && rest.includes(' for update')) kind = 'SELECT accounts FOR UPDATE (patient lock)';
  else if (rest.includes('from "accounts"')) kind = 'SELECT accounts';
  else kind = `other: ${s.slice(0, 60)}`;
  return { kind, begins, ends };
}

/**
 * Rows of an audit INSERT: a multi-row INSERT … VALUES (…), (…) as Kysely compiles it, or one
 * JSON parameter holding the rows (jsonb_to_recordset), whose objects each carry `actor_kind`.
 */
function auditRowsOf(text: string, values: unknown): number {
  const first = Array.isArray(values) ? values[0] : undefined;
  if (typeof first === 'string' && first.startsWith('[')) return first.split('"actor_kind":').length - 1;
  return valuesRows(text);
}

/** Rows in a multi-row INSERT … VALUES (…), (…) as Kysely compiles it. */
function valuesRows(text: string): number {
  const v = text.toLowerCase().indexOf(' values ');
  if (v < 0) return 1;
  return (text.slice(v).match(/\)\s*,\s*\(/g)?.length ?? 0) + 1;
}

function stat(samples: number[]) {
  const sorted = Array.from(Float64Array.from(samples).sort());
  const total = sorted.reduce((a, b) => a + b, 0);
  const pick = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]! : NaN);
  return { count: sorted.length, totalMs: total, meanMs: sorted.length ? total / sorted.length : NaN, p50Ms: pick(0.5), p99Ms: pick(0.99) };
}

interface TxMarks {
  beganAt?: number | undefined;
  auditDoneAt?: number | undefined;
}

function callbackIndex(args: unknown[]): number {
  for (let i = args.length - 1; i >= 0; i--) if (typeof args[i] === 'function') return i;
  return -1;
}

export function instrumentPg() {
  let on = false;
  let startedAt = 0;
  let perKind = new Map<string, number[]>();
  let acquire: number[] = [];
  let txs: number[] = [];
  let holds: number[] = [];
  let auditInserts = 0;
  let auditRows = 0;
  let auditTxs: number[] = [];
  let batched = 0;
  let batchedKinds: Record<string, number> = {};
  let readBatches = 0;
  let readsBatched = 0;
  let examples: Record<string, string> = {};
  const marks = new WeakMap<object, TxMarks>();

  const origQuery = pg.Client.prototype.query as (...a: unknown[]) => unknown;
  (pg.Client.prototype as unknown as { query: unknown }).query = function (this: object, ...args: unknown[]) {
    if (!on) return origQuery.apply(this, args);
    const first = args[0];
    const text = typeof first === 'string' ? first : typeof (first as { text?: unknown })?.text === 'string' ? (first as { text: string }).text : '';
    // A pipelined batch (src/db/pg-pipeline.ts) carries the statements sent in front of the main
    // one: as `held`, or (since prepared statements) as `steps` ending with the main statement.
    const batch = first as { held?: unknown; steps?: unknown } | undefined;
    const held = Array.isArray(batch?.held) ? batch.held : Array.isArray(batch?.steps) ? batch.steps.slice(0, -1) : undefined;
    const reads = held ? (held as { text?: unknown }[]).filter((h) => h?.text === 'begin read only').length : 0;
    let { kind, begins, ends } = classify(text);
    if (reads > 0) {
      // Several read transactions, each begun and committed inside the batch.
      kind = 'multiplexed read batch';
      begins = ends = false;
      readBatches++;
      readsBatched += reads;
    }
    if (!(kind in examples)) examples[kind] = text.slice(0, 2000);
    if (held) {
      batched += held.length;
      for (const h of held as { text?: unknown; values?: unknown }[]) {
        const ht = typeof h?.text === 'string' ? h.text : '';
        const hk = classify(ht).kind;
        batchedKinds[hk] = (batchedKinds[hk] ?? 0) + 1;
        if (!(hk in examples)) examples[hk] = ht.slice(0, 2000);
        if (hk === 'INSERT audit event(s)') {
          auditInserts++;
          auditRows += auditRowsOf(ht, h?.values);
        }
      }
    }
    const t0 = performance.now();
    const m = marks.get(this) ?? {};
    marks.set(this, m);
    if (begins) m.beganAt = t0;
    if (kind === 'INSERT audit event(s)') {
      auditInserts++;
      auditRows += auditRowsOf(text, Array.isArray(args[1]) ? args[1] : (first as { values?: unknown })?.values);
    }
    const done = () => {
      const t1 = performance.now();
      let arr = perKind.get(kind);
      if (!arr) perKind.set(kind, (arr = []));
      arr.push(t1 - t0);
      if (kind === 'INSERT audit event(s)') m.auditDoneAt = t1;
      if (ends) {
        if (m.beganAt !== undefined) txs.push(t1 - m.beganAt);
        if (m.auditDoneAt !== undefined) {
          holds.push(t1 - m.auditDoneAt);
          if (m.beganAt !== undefined) auditTxs.push(t1 - m.beganAt);
        }
        m.beganAt = m.auditDoneAt = undefined;
      }
    };
    const cbAt = callbackIndex(args);
    if (cbAt >= 0) {
      const cb = args[cbAt] as (...r: unknown[]) => unknown;
      args[cbAt] = (...r: unknown[]) => {
        done();
        return cb(...r);
      };
      return origQuery.apply(this, args);
    }
    const out = origQuery.apply(this, args);
    if (out && typeof (out as Promise<unknown>).then === 'function') (out as Promise<unknown>).then(done, done);
    else done();
    return out;
  };

  const origConnect = pg.Pool.prototype.connect as (...a: unknown[]) => unknown;
  (pg.Pool.prototype as unknown as { connect: unknown }).connect = function (this: object, ...args: unknown[]) {
    if (!on) return origConnect.apply(this, args);
    const t0 = performance.now();
    const cb = args[0];
    if (typeof cb === 'function') {
      return origConnect.call(this, (...r: unknown[]) => {
        acquire.push(performance.now() - t0);
        return (cb as (...x: unknown[]) => unknown)(...r);
      });
    }
    const out = origConnect.apply(this, args) as Promise<unknown>;
    out.then(
      () => acquire.push(performance.now() - t0),
      () => {},
    );
    return out;
  };

  return {
    start() {
      perKind = new Map();
      acquire = [];
      txs = [];
      holds = [];
      auditInserts = 0;
      auditRows = 0;
      auditTxs = [];
      batched = 0;
      batchedKinds = {};
      readBatches = 0;
      readsBatched = 0;
      examples = {};
      startedAt = performance.now();
      on = true;
    },
    stop(): PgProfile {
      on = false;
      const statements = [...perKind.entries()]
        .map(([kind, s]) => {
          const st = stat(s);
          return { kind, count: st.count, totalMs: st.totalMs, meanMs: st.meanMs, p50Ms: st.p50Ms, p99Ms: st.p99Ms };
        })
        .sort((a, b) => b.count - a.count);
      const a = stat(acquire);
      const t = stat(txs);
      const h = stat(holds);
      const at = stat(auditTxs);
      return {
        wallMs: performance.now() - startedAt,
        queries: statements.reduce((n, s) => n + s.count, 0),
        statements,
        poolAcquire: { count: a.count, meanMs: a.meanMs, p99Ms: a.p99Ms },
        transaction: { count: t.count, meanMs: t.meanMs, p99Ms: t.p99Ms },
        auditTransaction: { count: at.count, meanMs: at.meanMs, p99Ms: at.p99Ms },
        chainLockHold: { count: h.count, meanMs: h.meanMs, p99Ms: h.p99Ms, totalMs: h.totalMs },
        audit: { inserts: auditInserts, rows: auditRows },
        batchedStatements: batched,
        batchedKinds,
        readBatches: { batches: readBatches, reads: readsBatched },
        examples,
      };
    },
  };
}

/**
 * A child server's `profile-start` / `profile-stop` (→ { pg, cpu }) commands: query counting and
 * V8 sampling. Call it before the server opens its pool (the wrapper is a no-op until started).
 */
export function profileCommands() {
  const queries = instrumentPg();
  const cpu = cpuProfiler();
  return {
    'profile-start': async () => {
      await cpu.start();
      queries.start();
    },
    'profile-stop': async () => ({ pg: queries.stop(), cpu: await cpu.stop() }),
  };
}
