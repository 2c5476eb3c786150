import { performance } from 'node:perf_hooks';
import pg from 'pg';

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
  /**
   * Audit INSERT answered → COMMIT answered: a lower bound of how long each audited transaction
   * holds the single audit_chain_head row lock (it holds it from somewhere inside the INSERT).
   * Every audited transaction in the database queues on that lock, so totalMs / wallMs is the
   * fraction of time the lock was taken: near 1.0 means the lock is the bottleneck.
   */
  chainLockHold: { count: number; meanMs: number; p99Ms: number; totalMs: number };
}

function classify(text: string): string {
  const s = text.replace(/\s+/g, ' ').trim().toLowerCase();
  if (s === 'begin') return 'BEGIN';
  if (s === 'commit') return 'COMMIT';
  if (s === 'rollback') return 'ROLLBACK';
  if (s.startsWith("select set_config('role'")) return 'set role + principal';
  if (s.includes('confidant_resolve_session')) return 'resolve session (cache miss)';
  if (s.startsWith('insert into "audit_events"')) return 'INSERT audit event';
  if (s.includes('from "patient_profiles"')) return 'SELECT profile';
  if (s.includes('from bench_profiles')) return 'SELECT row (baseline)';
  return `other: ${s.slice(0, 60)}`;
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

export function instrumentPg() {
  let on = false;
  let startedAt = 0;
  let perKind = new Map<string, number[]>();
  let acquire: number[] = [];
  let txs: number[] = [];
  let holds: number[] = [];
  const marks = new WeakMap<object, TxMarks>();

  const origQuery = pg.Client.prototype.query as (...a: unknown[]) => unknown;
  (pg.Client.prototype as unknown as { query: unknown }).query = function (this: object, ...args: unknown[]) {
    if (!on) return origQuery.apply(this, args);
    const first = args[0];
    const text = typeof first === 'string' ? first : typeof (first as { text?: unknown })?.text === 'string' ? (first as { text: string }).text : '';
    const kind = classify(text);
    const t0 = performance.now();
    const m = marks.get(this) ?? {};
    marks.set(this, m);
    if (kind === 'BEGIN') m.beganAt = t0;
    const done = () => {
      const t1 = performance.now();
      let arr = perKind.get(kind);
      if (!arr) perKind.set(kind, (arr = []));
      arr.push(t1 - t0);
      if (kind === 'INSERT audit event') m.auditDoneAt = t1;
      if (kind === 'COMMIT' || kind === 'ROLLBACK') {
        if (m.beganAt !== undefined) txs.push(t1 - m.beganAt);
        if (m.auditDoneAt !== undefined) holds.push(t1 - m.auditDoneAt);
        m.beganAt = m.auditDoneAt = undefined;
      }
    };
    const hasCallback = args.some((a) => typeof a === 'function');
    const out = origQuery.apply(this, args);
    if (!hasCallback && out && typeof (out as Promise<unknown>).then === 'function') {
      (out as Promise<unknown>).then(done, done);
    } else {
      done();
    }
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
      return {
        wallMs: performance.now() - startedAt,
        queries: statements.reduce((n, s) => n + s.count, 0),
        statements,
        poolAcquire: { count: a.count, meanMs: a.meanMs, p99Ms: a.p99Ms },
        transaction: { count: t.count, meanMs: t.meanMs, p99Ms: t.p99Ms },
        chainLockHold: { count: h.count, meanMs: h.meanMs, p99Ms: h.p99Ms, totalMs: h.totalMs },
      };
    },
  };
}
