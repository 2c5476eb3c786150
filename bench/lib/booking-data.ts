import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { csrfTokenFor, hashSessionToken } from '../../src/modules/identity/session-tokens';
import { OWNER_ROLE, PG_ADMIN_URL, SERVICE_ROLE, urlFor } from '../../test/pg-admin';

/**
 * bench:booking's data set, loaded in bulk through the owner connection, in one transaction
 * that runs as the system principal (FORCE ROW LEVEL SECURITY applies to the owner too; the
 * policies let `confidant_is_system()` through). Nothing here goes through the API, so there
 * are no audit events for the fixture rows, and only the patients the bench signs in as get a
 * session (and none gets a password: nobody signs in with one).
 *
 * Patients, by position (`idx`), so that the roles never mix:
 *   [0, registered)                     the read patients, registered through the API beforehand;
 *   [registered, registered + bookers)  the booking patients: past appointments only (so the cap
 *                                       of future bookings never stops them), and a session each;
 *   the rest                            everyone else.
 *
 * Appointments, slot-aligned (the clinic's slots are `slotMinutes` long from local midnight, and
 * the clinic's zone is a whole number of hours from UTC, so the UTC grid is the clinic's grid):
 *   past      i = 0 … past-1:   clinician i mod C, time index s = i div C, start = pastBase −
 *             (13·s + clinician mod 13) slots. A clinician's starts differ for different s (the
 *             offset is below 13), and two appointments start together only with the same s, i.e.
 *             within one block of C consecutive i, whose patients (7919·i + 13·s) mod P are
 *             distinct (7919 is prime and does not divide P). So neither partial unique index
 *             (clinician, start) nor (patient, start) can be violated. 1 in 20 cancelled, 1 in 20
 *             no-show, the rest completed; about half of the cancelled ones were rescheduled: the
 *             patient's next live appointment names them in `rescheduled_from`.
 *   upcoming  j = 0 … upcoming-1: clinician j mod C, s = j div C, start = futureBase +
 *             (10·s + clinician mod 10) slots (the next ~14 days with the defaults), patient
 *             = the (j mod N)-th of the N patients who are not booking patients, so each read patient
 *             has upcoming appointments too; same argument for both indexes. All 'booked'.
 */

export interface DataShape {
  /** All patients, the registered read patients included. */
  patients: number;
  clinicians: number;
  /** All appointments (past + upcoming). */
  appointments: number;
  /** Of which upcoming ('booked', in the next ~14 days). */
  upcoming: number;
  bookers: number;
  slotMinutes: number;
}

export interface Booker {
  id: string;
  cookie: string;
  csrfToken: string;
}

export interface LoadReport {
  loadMs: number;
  vacuumAnalyzeMs: number;
  rows: Record<string, number>;
  clinicianIds: string[];
  bookers: Booker[];
  /** Appointments per read patient: min / mean / max, and upcoming ones per read patient. */
  readPatientAppointments: { min: number; mean: number; max: number; upcomingMin: number; upcomingMax: number };
  /** Appointments per patient over all patients. */
  perPatient: { min: number; mean: number; max: number };
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

export function validateShape(s: DataShape, registered: number) {
  const past = s.appointments - s.upcoming;
  const nonBookers = s.patients - s.bookers;
  const problems: string[] = [];
  if (registered + s.bookers > s.patients) problems.push(`patients (${s.patients}) must cover the ${registered} read patients and ${s.bookers} booking patients`);
  if (gcd(7919, s.patients) !== 1) problems.push('the number of patients must not be a multiple of 7919');
  if (s.clinicians >= s.patients) problems.push('fewer clinicians than patients, please');
  if (nonBookers <= s.clinicians) problems.push('more non-booking patients than clinicians are needed for upcoming appointments');
  if (past < 0) problems.push('upcoming must not exceed appointments');
  // Upcoming appointments: one in ten of each clinician's slots from now on; keep that within ~3 months.
  const upcomingSpanMin = Math.ceil(s.upcoming / s.clinicians) * 10 * s.slotMinutes;
  if (upcomingSpanMin > 90 * 24 * 60) problems.push(`${s.upcoming} upcoming appointments would reach beyond 90 days for ${s.clinicians} clinicians`);
  if (problems.length) throw new Error(`bench data shape: ${problems.join('; ')}`);
}

/** Sessions for the booking patients: the cookie the service would set, and its CSRF token. */
function newSessions(n: number) {
  return Array.from({ length: n }, () => {
    const token = randomBytes(32).toString('base64url');
    return { token, hash: hashSessionToken(token), csrfToken: csrfTokenFor(token) };
  });
}

export async function loadBookingData(database: string, shape: DataShape, registeredIds: string[]): Promise<LoadReport> {
  validateShape(shape, registeredIds.length);
  const reg = registeredIds.length;
  const past = shape.appointments - shape.upcoming;
  const nonBookers = shape.patients - shape.bookers;
  const sessions = newSessions(shape.bookers);
  const c = new pg.Client({ connectionString: urlFor(OWNER_ROLE, database), application_name: 'confidant-bench-loader' });
  await c.connect();
  const t0 = performance.now();
  try {
    await c.query('begin');
    await c.query(
      `select set_config('confidant.principal_kind', 'system', true), set_config('confidant.reason', 'bench:booking bulk load', true),
              set_config('synchronous_commit', 'off', true)`,
    );
    await c.query('create temp table bench_pat (idx int primary key, id uuid not null) on commit drop');
    await c.query('create temp table bench_gp (idx int primary key, id uuid not null) on commit drop');
    await c.query(`insert into bench_pat select (ord - 1)::int, id from unnest($1::uuid[]) with ordinality as u(id, ord)`, [registeredIds]);
    await c.query(`insert into bench_pat select g, gen_random_uuid() from generate_series($1::int, $2::int - 1) g`, [reg, shape.patients]);
    await c.query(`insert into bench_gp select g, gen_random_uuid() from generate_series(0, $1::int - 1) g`, [shape.clinicians]);

    await c.query(
      `insert into accounts (id, kind, email, display_name, created_at)
         select id, 'patient', 'bench.p' || idx || '@example.com', 'Patient' || idx, now() - interval '400 days'
         from bench_pat where idx >= $1`,
      [reg],
    );
    await c.query(
      `insert into patient_profiles (account_id, given_name, family_name, date_of_birth, created_at, updated_at)
         select id, 'Bench', 'Patient ' || idx, date '1940-01-01' + (idx * 7) % 25000, now() - interval '400 days', now() - interval '400 days'
         from bench_pat where idx >= $1`,
      [reg],
    );
    await c.query(
      `insert into accounts (id, kind, email, display_name, created_at)
         select id, 'clinician', 'bench.gp' || idx || '@example.com', 'Dr Bench ' || lpad((idx + 1)::text, 2, '0'), now() - interval '800 days'
         from bench_gp`,
    );
    // Every clinician, every day, all day: slots exist at any hour the bench runs.
    await c.query(
      `insert into availability_rules (clinician_id, weekday, start_time, end_time)
         select id, wd, time '00:00', time '24:00' from bench_gp, generate_series(1, 7) wd`,
    );

    // Past appointments (see the header for why no unique index can be violated).
    await c.query(
      `with base as (select to_timestamp(floor(extract(epoch from now()) / ($2::int * 60)) * ($2::int * 60)) - interval '1 hour' as t)
       insert into appointments (patient_id, clinician_id, starts_at, ends_at, mode, reason, status, cancelled_by, cancelled_at, created_at, updated_at)
       select p.id, gp.id, x.starts_at, x.starts_at + make_interval(mins => $2::int),
              case when i % 3 = 0 then 'video' else 'audio' end,
              'Bench consultation',
              case i % 20 when 0 then 'cancelled' when 1 then 'no_show' else 'completed' end,
              case when i % 20 = 0 then 'patient' end,
              case when i % 20 = 0 then x.starts_at - interval '1 day' end,
              x.starts_at - interval '3 days', x.starts_at
       from generate_series(0, $1::int - 1) i
       cross join lateral (select i % $3::int as ci, i / $3::int as s) k
       cross join lateral (select (select t from base) - make_interval(mins => $2::int * (13 * k.s + k.ci % 13)) as starts_at) x
       join bench_gp gp on gp.idx = k.ci
       join bench_pat p on p.idx = ((i::bigint * 7919 + k.s * 13) % $4::int)::int`,
      [past, shape.slotMinutes, shape.clinicians, shape.patients],
    );
    // Upcoming appointments, for patients who are not booking patients.
    await c.query(
      `with base as (select to_timestamp(floor(extract(epoch from now()) / ($2::int * 60)) * ($2::int * 60)) + interval '2 hours' as t)
       insert into appointments (patient_id, clinician_id, starts_at, ends_at, mode, reason, status, created_at, updated_at)
       select p.id, gp.id, x.starts_at, x.starts_at + make_interval(mins => $2::int),
              case when j % 2 = 0 then 'video' else 'audio' end, 'Bench consultation', 'booked',
              now() - interval '1 day', now() - interval '1 day'
       from generate_series(0, $1::int - 1) j
       cross join lateral (select j % $3::int as ci, j / $3::int as s, j % $4::int as q) k
       cross join lateral (select (select t from base) + make_interval(mins => $2::int * (10 * k.s + k.ci % 10)) as starts_at) x
       join bench_gp gp on gp.idx = k.ci
       join bench_pat p on p.idx = case when k.q < $5::int then k.q else k.q + $6::int end`,
      [shape.upcoming, shape.slotMinutes, shape.clinicians, nonBookers, reg, shape.bookers],
    );
    // Reschedules: about half of the cancelled appointments were moved to the patient's next one.
    await c.query(
      `update appointments n set rescheduled_from = x.old_id
         from (select o.id as old_id,
                      (select a.id from appointments a
                        where a.patient_id = o.patient_id and a.starts_at > o.starts_at and a.status <> 'cancelled'
                        order by a.starts_at limit 1) as new_id
                 from appointments o
                where o.status = 'cancelled' and o.id::text < '8') x
        where n.id = x.new_id`,
    );
    // The booking patients' sessions (what a sign-in would have created).
    await c.query(
      `insert into sessions (token_hash, account_id, stage, absolute_expires_at, user_agent)
         select h, p.id, 'full', now() + interval '12 hours', 'confidant-bench'
         from unnest($1::bytea[]) with ordinality as u(h, ord) join bench_pat p on p.idx = $2::int + (ord - 1)::int`,
      [sessions.map((s) => s.hash), reg],
    );
    const bookerIds = (
      await c.query<{ id: string }>(`select id from bench_pat where idx >= $1 and idx < $2 order by idx`, [reg, reg + shape.bookers])
    ).rows.map((r) => r.id);
    const clinicianIds = (await c.query<{ id: string }>(`select id from bench_gp order by idx`)).rows.map((r) => r.id);
    await c.query('commit');
    const loadMs = performance.now() - t0;

    const t1 = performance.now();
    // What autovacuum would have done by the time a real table got this big: statistics for the
    // planner and a visibility map. Tables are the owner's, so the owner may.
    await c.query('vacuum (analyze) accounts, patient_profiles, appointments, availability_rules, sessions');
    const vacuumAnalyzeMs = performance.now() - t1;

    const bookers = bookerIds.map((id, i) => ({ id, cookie: `confidant_session=${sessions[i]!.token}`, csrfToken: sessions[i]!.csrfToken }));
    const stats = await dataStats(database, registeredIds);
    return { loadMs, vacuumAnalyzeMs, clinicianIds, bookers, ...stats };
  } catch (err) {
    await c.query('rollback').catch(() => {});
    throw err;
  } finally {
    await c.end().catch(() => {});
  }
}

/** Row counts and per-patient spread, read as the superuser (which RLS does not filter). */
async function dataStats(database: string, readPatientIds: string[]) {
  return withDb(database, async (c) => {
    const rows: Record<string, number> = {};
    for (const t of ['accounts', 'patient_profiles', 'appointments', 'availability_rules', 'sessions', 'audit_events']) {
      rows[t] = (await c.query<{ n: number }>(`select count(*)::int as n from ${t}`)).rows[0]!.n;
    }
    rows['appointments rescheduled from another'] = (
      await c.query<{ n: number }>(`select count(*)::int as n from appointments where rescheduled_from is not null`)
    ).rows[0]!.n;
    rows['appointments upcoming (booked, future)'] = (
      await c.query<{ n: number }>(`select count(*)::int as n from appointments where status = 'booked' and starts_at > now()`)
    ).rows[0]!.n;
    const r = (
      await c.query<{ min: number; mean: number; max: number; umin: number; umax: number }>(
        `select min(n)::int as min, avg(n)::float8 as mean, max(n)::int as max, min(u)::int as umin, max(u)::int as umax from (
           select r.id, count(a.id) as n, count(a.id) filter (where a.status = 'booked' and a.starts_at > now()) as u
           from unnest($1::uuid[]) r(id) left join appointments a on a.patient_id = r.id group by r.id) x`,
        [readPatientIds],
      )
    ).rows[0]!;
    const all = (
      await c.query<{ min: number; mean: number; max: number }>(
        `select min(n)::int as min, avg(n)::float8 as mean, max(n)::int as max from (
           select p.account_id, count(a.id) as n from patient_profiles p left join appointments a on a.patient_id = p.account_id group by 1) x`,
      )
    ).rows[0]!;
    return {
      rows,
      readPatientAppointments: { min: r.min, mean: r.mean, max: r.max, upcomingMin: r.umin, upcomingMax: r.umax },
      perPatient: all,
    };
  });
}

/** A superuser connection to a bench database (for checks only; never for the measured work). */
export async function withDb<T>(database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${database}`;
  const c = new pg.Client({ connectionString: u.toString(), application_name: 'confidant-bench-check' });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => {});
  }
}

export async function accountIdsByEmail(database: string, emails: string[]): Promise<string[]> {
  return withDb(database, async (c) => {
    const { rows } = await c.query<{ id: string; email: string }>(`select id, email from accounts where email = any($1::text[])`, [emails]);
    const byEmail = new Map(rows.map((r) => [r.email, r.id]));
    return emails.map((e) => {
      const id = byEmail.get(e);
      if (!id) throw new Error(`registered patient ${e} not found in the database`);
      return id;
    });
  });
}

/**
 * GET /api/appointments's query as Kysely compiled it in src/modules/appointments (selectView +
 * orderBy) when this bench was written. Only a fallback: the bench EXPLAINs the text the service
 * really sends, captured from one instrumented request.
 */
export const LIST_QUERY =
  'select "moved_to"."id" as "rescheduled_to", "held"."id" as "consultation_id", "appointments"."id", "appointments"."patient_id", "appointments"."clinician_id", ' +
  '"c"."display_name" as "clinician_name", "appointments"."starts_at", "appointments"."ends_at", "appointments"."mode", ' +
  '"appointments"."reason", "appointments"."status", "appointments"."cancelled_by", "appointments"."rescheduled_from", ' +
  '"appointments"."created_at" from "appointments" inner join "accounts" as "c" on "c"."id" = "appointments"."clinician_id" ' +
  'left join "appointments" as "moved_to" on "moved_to"."rescheduled_from" = "appointments"."id" ' +
  'left join "consultations" as "held" on "held"."appointment_id" = "appointments"."id" and "held"."status" = \'ended\' ' +
  'where "appointments"."patient_id" = $1 order by "appointments"."starts_at"';

export interface PlanReport {
  /** How the plan was obtained. */
  as: string;
  plan: string;
  /** Server-side execution time of `runs` executions (EXPLAIN ANALYZE), one per read patient, round-robin. */
  executionMs: { median: number; p90: number; mean: number };
  planningMs: { median: number };
  runs: number;
  rows: number;
}

/** The list statement's parameters: the patient, and (since it reads the past with a limit) now and that limit. */
function paramsFor(sqlText: string, patientId: string): unknown[] {
  return /\$3\b/.test(sqlText) ? [patientId, new Date(), 50] : [patientId];
}

function median(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
}

async function explainLoop(
  c: pg.Client,
  setup: (c: pg.Client, patientId: string) => Promise<void>,
  sqlText: string,
  patientIds: string[],
  runs: number,
  as: string,
): Promise<PlanReport> {
  const exec: number[] = [];
  const plan: number[] = [];
  let text = '';
  let rows = 0;
  for (let i = 0; i < runs; i++) {
    const id = patientIds[i % patientIds.length]!;
    await c.query('begin read only');
    try {
      await setup(c, id);
      const { rows: out } = await c.query<{ 'QUERY PLAN': unknown }>(`explain (analyze, buffers, format json) ${sqlText}`, paramsFor(sqlText, id));
      const j = (out[0]!['QUERY PLAN'] as { Plan: { 'Actual Rows': number }; 'Execution Time': number; 'Planning Time': number }[])[0]!;
      exec.push(j['Execution Time']);
      plan.push(j['Planning Time']);
      if (i === 0) {
        rows = j.Plan['Actual Rows'];
        const { rows: t } = await c.query<{ 'QUERY PLAN': string }>(`explain (analyze, buffers, verbose, costs off) ${sqlText}`, paramsFor(sqlText, id));
        text = t.map((r) => r['QUERY PLAN']).join('\n');
      }
    } finally {
      await c.query('rollback');
    }
  }
  const sorted = [...exec].sort((a, b) => a - b);
  return {
    as,
    plan: text,
    executionMs: { median: median(exec), p90: sorted[Math.min(sorted.length - 1, Math.ceil(0.9 * sorted.length) - 1)]!, mean: exec.reduce((a, b) => a + b, 0) / exec.length },
    planningMs: { median: median(plan) },
    runs,
    rows,
  };
}

/**
 * The list query's plan and server-side time: (1) as the service runs it — the service role,
 * inside a READ ONLY transaction with the patient principal set, so RLS applies — and (2) as the
 * superuser, which RLS does not filter: the difference is what the policies cost on the server.
 */
export async function explainListQuery(database: string, patientIds: string[], sqlText = LIST_QUERY, runs = 50): Promise<PlanReport[]> {
  const out: PlanReport[] = [];
  const svc = new pg.Client({ connectionString: urlFor(SERVICE_ROLE, database), application_name: 'confidant-bench-explain' });
  await svc.connect();
  try {
    out.push(
      await explainLoop(
        svc,
        async (c, id) => {
          await c.query(
            `select set_config('role', $1, true), set_config('confidant.principal_kind', 'patient', true),
                    set_config('confidant.principal_id', $2, true), set_config('confidant.principal_role', '', true),
                    set_config('confidant.session_id', '', true), set_config('confidant.reason', '', true)`,
            [SERVICE_ROLE, id],
          );
        },
        sqlText,
        patientIds,
        runs,
        `${SERVICE_ROLE}, principal = patient (row-level security on appointments and accounts)`,
      ),
    );
  } finally {
    await svc.end().catch(() => {});
  }
  out.push(await withDb(database, (c) => explainLoop(c, async () => {}, sqlText, patientIds, runs, 'superuser (no row-level security)')));
  return out;
}
