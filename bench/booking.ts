/**
 * npm run bench:booking — appointments at realistic volume, on PostgreSQL, in one run:
 *
 *   data   a fresh bench database migrated by the owner, bulk-loaded through the owner connection
 *          (10,000 patients, 50 clinicians available every day 00:00–24:00, 200,000 appointments,
 *          most in the past, some upcoming);
 *   read   GET /api/appointments as N signed-in patients (the real service, child process) against
 *          (a) a bare read of the same rows (bare Fastify + pg, one statement, no session, RLS, audit
 *          or response schema; it answers the same JSON body, which the bench checks) and, for
 *          reference, (p) bench:read's primary-key read; alternating p, a, b, p, a, b; best of each;
 *          ratio b/a (target ≥ 0.5) and b/p; then a profiling run of a and b and the list query's
 *          plan under row-level security;
 *   write  64 concurrent clients racing to book 1,000 free slots taken from GET /api/slots, until
 *          every slot is gone; bookings/s, p99, and a check in the database that exactly one
 *          booking exists per slot and exactly as many bookings as slots were created.
 *
 * Env: BENCH_DURATION_S (10), BENCH_WARMUP_S (2), BENCH_CONNECTIONS (64), BENCH_PATIENTS (200: read
 *      patients, registered through the API; rows of the baseline), BENCH_POOL_SIZE (20),
 *      BENCH_PROFILE_S (3, 0 = skip), BENCH_ROUNDS (2), BENCH_DATA_PATIENTS (10000),
 *      BENCH_DATA_CLINICIANS (50), BENCH_DATA_APPOINTMENTS (200000), BENCH_DATA_UPCOMING (10000),
 *      BENCH_BOOKING_SLOTS (1000), BENCH_BOOKING_CLIENTS (64), BENCH_BOOKING_WINDOW (64),
 *      BENCH_BOOKING_SLOT_CLINICIANS (10), BENCH_BOOKING_DEADLINE_S (90), BENCH_EXPLAIN_RUNS (50),
 *      BENCH_TIMEOUT_S (30: a slower request is a failure).
 * Any failed request fails the run (exit 1); in the race, anything but 201 or 409 slot_taken does.
 */
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { adminUrlFor, OWNER_ROLE, preparePostgres, seedBaseline, SERVICE_ROLE, urlFor } from './lib/bench-db';
import { accountIdsByEmail, explainListQuery, LIST_QUERY, loadBookingData, withDb, type PlanReport } from './lib/booking-data';
import { runBookingRace, type RaceResult, type RaceSlot } from './lib/booking-race';
import { busyCores, cpuSnapshot } from './lib/cpu';
import { BenchFailure, envInt, loud, runBench } from './lib/harness';
import { getJson, registerPatients, sameLengthCookie, send, type RequestSpec } from './lib/loadgen';
import type { PgProfile } from './lib/pg-instrument';
import {
  best,
  closedLoopOptions,
  fmt,
  measureRounds,
  printBest,
  printProfile,
  printRuns,
  printTable,
  profileRuns,
  runsRecord,
  type LoadTarget,
  type MeasureOptions,
} from './lib/measure';

const here = path.dirname(fileURLToPath(import.meta.url));
const HOST = '127.0.0.1';
const TARGET_RATIO = 0.5;
const SLOT_MINUTES = 10; // the service's default (SLOT_MINUTES), which the bench does not change
const LABELS = { p: 'baseline: primary-key read', a: 'baseline: bare list read', b: 'GET /api/appointments' } as const;

const opts = {
  /** patients: read patients, registered through the API, signed in, given appointments in bulk. Also the baseline's rows. */
  ...closedLoopOptions(2000),
  dataPatients: envInt('BENCH_DATA_PATIENTS', 10_000, 100, 1_000_000),
  dataClinicians: envInt('BENCH_DATA_CLINICIANS', 50, 1, 1000),
  dataAppointments: envInt('BENCH_DATA_APPOINTMENTS', 200_000, 0, 10_000_000),
  dataUpcoming: envInt('BENCH_DATA_UPCOMING', 10_000, 0, 1_000_000),
  slots: envInt('BENCH_BOOKING_SLOTS', 1000, 1, 20_000),
  clients: envInt('BENCH_BOOKING_CLIENTS', 64, 1, 1000),
  window: envInt('BENCH_BOOKING_WINDOW', 64, 1, 20_000),
  slotClinicians: envInt('BENCH_BOOKING_SLOT_CLINICIANS', 10, 1, 1000),
  raceDeadlineS: envInt('BENCH_BOOKING_DEADLINE_S', 90, 5, 600),
  explainRuns: envInt('BENCH_EXPLAIN_RUNS', 50, 1, 1000),
  /** A request slower than this is a failure. Longer than bench:read's 10 s: a regressed list answers in seconds under 64 connections. */
  timeoutS: envInt('BENCH_TIMEOUT_S', 30, 1, 300),
};
/** Each booking patient books once: enough for every slot, plus the one each client holds at the end. */
const bookers = opts.slots + opts.clients + 50;

const budgetMs =
  60_000 +
  opts.patients * 100 +
  (opts.dataAppointments / 200_000) * 30_000 +
  3 * opts.rounds * (opts.warmupS + opts.durationS + 3) * 1000 +
  2 * (opts.profileS + 5) * 1000 +
  opts.explainRuns * 200 +
  opts.raceDeadlineS * 1000 +
  2 * opts.timeoutS * 1000;

interface ListBody {
  upcoming: { id: string; startsAt: string; status: string }[];
  past: { id: string }[];
}

/** `slots` distinct free slots, spread over `clinicians` clinicians and the next few days, from GET /api/slots. */
async function prepareSlots(port: number, cookie: string, clinicianIds: string[]): Promise<RaceSlot[]> {
  const n = Math.min(opts.slotClinicians, clinicianIds.length);
  const stride = Math.max(1, Math.floor(clinicianIds.length / n));
  const chosen = Array.from({ length: n }, (_, i) => clinicianIds[(i * stride) % clinicianIds.length]!);
  const perClinician = Math.ceil(opts.slots / n);
  const notBefore = Date.now() + 15 * 60_000; // nothing the race could see pass into "already started"
  const out: RaceSlot[] = [];
  const seen = new Set<string>();
  for (const clinicianId of chosen) {
    const body = await getJson<{ slots: { clinicianId: string; startsAt: string }[] }>(
      HOST,
      port,
      { path: `/api/slots?clinicianId=${clinicianId}&limit=500`, headers: { cookie, 'user-agent': 'confidant-bench' } },
      'GET /api/slots',
    );
    const free = body.slots.filter((s) => s.clinicianId === clinicianId && new Date(s.startsAt).getTime() >= notBefore);
    const step = Math.max(1, Math.floor(free.length / perClinician));
    for (let i = 0; i < free.length && out.length < opts.slots; i += step) {
      const s = free[i]!;
      const key = `${s.clinicianId}|${s.startsAt}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ clinicianId: s.clinicianId, startsAt: s.startsAt });
      if (out.filter((x) => x.clinicianId === clinicianId).length >= perClinician) break;
    }
  }
  if (out.length < opts.slots) throw new BenchFailure(`only ${out.length} free slots found for ${opts.slots} wanted`);
  return out.slice(0, opts.slots);
}

interface Verification {
  bookingsInDatabase: number;
  slotsWithExactlyOneBooking: number;
  slotsWithMoreThanOne: number;
  slotsWithNone: number;
  liveDuplicatesAnywhere: number;
  appointmentsTotal: number;
  appointmentsExpected: number;
  winnersMatchDatabase: boolean;
  patientsWithMoreThanOneRaceBooking: number;
  auditBookEvents: number;
  bookedNotifications: number;
  ok: boolean;
  problems: string[];
}

async function verifyRace(database: string, slots: RaceSlot[], race: RaceResult, bookerIds: string[], loadedAppointments: number): Promise<Verification> {
  return withDb(database, async (c) => {
    const one = async (q: string, params: unknown[] = []) => (await c.query<{ n: number }>(q, params)).rows[0]!.n;
    // Booking patients had past appointments only: their future 'booked' ones are the race's.
    const bookingsInDatabase = await one(
      `select count(*)::int as n from appointments a where a.patient_id = any($1::uuid[]) and a.status = 'booked' and a.starts_at > now()`,
      [bookerIds],
    );
    const perSlot = await c.query<{ n: number; ids: string[] }>(
      `select count(a.id)::int as n, array_remove(array_agg(a.id::text), null) as ids
         from unnest($1::uuid[], $2::timestamptz[]) s(clinician_id, starts_at)
         left join appointments a on a.clinician_id = s.clinician_id and a.starts_at = s.starts_at and a.status <> 'cancelled'
         group by s.clinician_id, s.starts_at`,
      [slots.map((s) => s.clinicianId), slots.map((s) => s.startsAt)],
    );
    const dbIds = new Set(perSlot.rows.flatMap((r) => r.ids));
    const winnerIds = new Set(race.wins.map((w) => w.appointmentId));
    const winnersMatchDatabase = dbIds.size === winnerIds.size && [...winnerIds].every((id) => dbIds.has(id));
    const v: Verification = {
      bookingsInDatabase,
      slotsWithExactlyOneBooking: perSlot.rows.filter((r) => r.n === 1).length,
      slotsWithMoreThanOne: perSlot.rows.filter((r) => r.n > 1).length,
      slotsWithNone: perSlot.rows.filter((r) => r.n === 0).length,
      liveDuplicatesAnywhere: await one(
        `select count(*)::int as n from (select 1 from appointments where status <> 'cancelled' group by clinician_id, starts_at having count(*) > 1) d`,
      ),
      appointmentsTotal: await one(`select count(*)::int as n from appointments`),
      appointmentsExpected: loadedAppointments + slots.length,
      winnersMatchDatabase,
      patientsWithMoreThanOneRaceBooking: await one(
        `select count(*)::int as n from (select patient_id from appointments where patient_id = any($1::uuid[]) and status = 'booked' and starts_at > now()
           group by 1 having count(*) > 1) x`,
        [bookerIds],
      ),
      auditBookEvents: await one(`select count(*)::int as n from audit_events where action = 'appointment.book'`),
      bookedNotifications: await one(`select count(*)::int as n from notifications where kind = 'appointment_booked'`),
      ok: false,
      problems: [],
    };
    const p = v.problems;
    if (race.created !== slots.length) p.push(`${race.created} answers 201 for ${slots.length} slots`);
    if (v.bookingsInDatabase !== slots.length) p.push(`${v.bookingsInDatabase} race bookings in the database for ${slots.length} slots`);
    if (v.slotsWithExactlyOneBooking !== slots.length) p.push(`${v.slotsWithExactlyOneBooking} of ${slots.length} slots hold exactly one booking`);
    if (v.slotsWithMoreThanOne) p.push(`${v.slotsWithMoreThanOne} slots booked more than once`);
    if (v.liveDuplicatesAnywhere) p.push(`${v.liveDuplicatesAnywhere} (clinician, start) pairs with more than one live appointment`);
    if (v.appointmentsTotal !== v.appointmentsExpected) p.push(`${v.appointmentsTotal} appointments in all, expected ${v.appointmentsExpected}`);
    if (!winnersMatchDatabase) p.push('the appointment ids answered with 201 are not the ones in the database');
    if (v.patientsWithMoreThanOneRaceBooking) p.push(`${v.patientsWithMoreThanOneRaceBooking} booking patients booked more than once`);
    if (v.auditBookEvents !== slots.length) p.push(`${v.auditBookEvents} appointment.book audit events for ${slots.length} bookings`);
    if (v.bookedNotifications !== slots.length) p.push(`${v.bookedNotifications} booking notifications for ${slots.length} bookings`);
    v.ok = p.length === 0;
    return v;
  });
}

function printPlans(plans: PlanReport[], sqlText: string) {
  console.log(`\nthe list query (GET /api/appointments), ${plans[0]?.runs ?? 0} EXPLAIN ANALYZE runs each over the read patients:`);
  console.log(`  ${sqlText.replace(/\s+/g, ' ')}`);
  for (const p of plans) {
    console.log(
      `  as ${p.as}: ${p.rows} rows; execution median ${fmt(p.executionMs.median, 3)} ms (p90 ${fmt(p.executionMs.p90, 3)}), ` +
        `planning median ${fmt(p.planningMs.median, 3)} ms`,
    );
  }
  const rls = plans[0];
  if (rls) {
    console.log(`  plan as the service runs it:`);
    for (const l of rls.plan.split('\n')) console.log(`    ${l}`);
  }
}

runBench('booking', { budgetMs }, async (bench) => {
  const { log } = bench;
  const mo: MeasureOptions = { host: HOST, connections: opts.connections, warmupS: opts.warmupS, durationS: opts.durationS, log, timeoutMs: opts.timeoutS * 1000 };

  log(
    `data: ${opts.dataPatients} patients, ${opts.dataClinicians} clinicians, ${opts.dataAppointments} appointments (${opts.dataUpcoming} upcoming); ` +
      `read: ${opts.durationS}s (+${opts.warmupS}s) × ${opts.rounds} rounds, ${opts.connections} connections, ${opts.patients} patients, pool ${opts.poolSize}; ` +
      `race: ${opts.clients} clients, ${opts.slots} slots, window ${opts.window}; ${os.cpus().length} CPUs, Node ${process.version}`,
  );
  const pg = await preparePostgres(log);
  log(`PostgreSQL ${pg.version}; ${Object.entries(pg.settings).map(([k, v]) => `${k}=${v}`).join(', ')}`);

  const dbA = await bench.createDatabase('a');
  const baselineIds = await seedBaseline(dbA, opts.patients);
  const dbB = await bench.createDatabase('b');

  const a = await bench.startChild('baseline', path.join(here, 'lib/baseline-server.ts'), [urlFor(OWNER_ROLE, dbA), String(opts.poolSize), adminUrlFor(dbB)]);
  const b = await bench.startChild('service', path.join(here, 'lib/service-server.ts'), [urlFor(SERVICE_ROLE, dbB), urlFor(OWNER_ROLE, dbB), String(opts.poolSize)]);
  log(`baseline on :${a.port} (pid ${a.pid}), service on :${b.port} (pid ${b.pid}, migrated by ${OWNER_ROLE}, runs as ${SERVICE_ROLE})`);

  // --- data ---
  let t = performance.now();
  const readers = await registerPatients(HOST, b.port, opts.patients);
  const registerS = (performance.now() - t) / 1000;
  const readerIds = await accountIdsByEmail(dbB, readers.map((r) => r.email));
  log(`registered ${readers.length} read patients through the API in ${fmt(registerS, 1)} s`);
  t = performance.now();
  const data = await loadBookingData(
    dbB,
    {
      patients: opts.dataPatients,
      clinicians: opts.dataClinicians,
      appointments: opts.dataAppointments,
      upcoming: opts.dataUpcoming,
      bookers,
      slotMinutes: SLOT_MINUTES,
    },
    readerIds,
  );
  const dataS = (performance.now() - t) / 1000;
  log(
    `bulk load: ${fmt(data.loadMs / 1000, 2)} s (one transaction through the owner connection), VACUUM ANALYZE ${fmt(data.vacuumAnalyzeMs / 1000, 2)} s; ` +
      `${fmt(dataS, 2)} s with checks`,
  );
  log(`  rows: ${Object.entries(data.rows).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  log(
    `  appointments per patient ${data.perPatient.min}…${data.perPatient.max} (mean ${fmt(data.perPatient.mean, 1)}); ` +
      `per read patient ${data.readPatientAppointments.min}…${data.readPatientAppointments.max} (mean ${fmt(data.readPatientAppointments.mean, 1)}), ` +
      `of which upcoming ${data.readPatientAppointments.upcomingMin}…${data.readPatientAppointments.upcomingMax}`,
  );

  // --- read ---
  const ua = { 'user-agent': 'confidant-bench' };
  const serviceRequests: RequestSpec[] = readers.map((r) => ({ path: '/api/appointments', headers: { ...ua, cookie: r.cookie } }));
  const dummyCookie = sameLengthCookie(readers[0]!.cookie);
  // Same patients, same order, same header bytes (a cookie of the same length, which the baseline ignores).
  const baselineRequests: RequestSpec[] = readerIds.map((id) => ({ path: `/appointments/${id}`, headers: { ...ua, cookie: dummyCookie } }));
  const pkRequests: RequestSpec[] = baselineIds.map((id) => ({ path: `/item/${id}`, headers: { ...ua, cookie: dummyCookie } }));
  const pre = await getJson<{ patientId?: string }>(HOST, a.port, pkRequests[0]!, 'baseline preflight');
  if (pre.patientId !== baselineIds[0]) throw new BenchFailure(`baseline preflight: unexpected body ${JSON.stringify(pre).slice(0, 200)}`);
  const list = await getJson<ListBody>(HOST, b.port, serviceRequests[0]!, 'GET /api/appointments preflight');
  if (!Array.isArray(list.upcoming) || !Array.isArray(list.past) || list.upcoming.length === 0 || list.past.length === 0) {
    throw new BenchFailure(`GET /api/appointments preflight: expected upcoming and past appointments, got ${JSON.stringify(list).slice(0, 300)}`);
  }
  const listBytes = Buffer.byteLength(JSON.stringify(list));
  log(`GET /api/appointments answers ${list.upcoming.length} upcoming + ${list.past.length} past (${listBytes} bytes) for the first read patient`);
  // The bare read must answer exactly what the service answers: same rows, same body.
  for (let i = 0; i < Math.min(5, readers.length); i++) {
    const [fromService, fromBaseline] = await Promise.all([
      send(undefined, HOST, b.port, serviceRequests[i]!).then((r) => r.body),
      send(undefined, HOST, a.port, baselineRequests[i]!).then((r) => r.body),
    ]);
    if (fromService !== fromBaseline) {
      throw new BenchFailure(
        `the bare list read and GET /api/appointments answer differently for read patient ${i}: ` +
          `${fromBaseline.length} vs ${fromService.length} bytes; baseline ${fromBaseline.slice(0, 200)} … service ${fromService.slice(0, 200)}`,
      );
    }
  }
  log(`the bare list read (a) answers byte for byte what GET /api/appointments (b) answers (checked for ${Math.min(5, readers.length)} patients)`);
  // The list query exactly as the service sends it (captured from one instrumented request), for EXPLAIN below.
  await b.call('profile-start');
  await getJson<ListBody>(HOST, b.port, serviceRequests[1 % serviceRequests.length]!, 'GET /api/appointments (capturing its SQL)');
  const captured = (await b.call<{ pg: PgProfile }>('profile-stop')).pg;
  // The list statement as the service sends it: one parameter (the patient), or three (the patient, now, the past limit).
  const sent = captured.examples?.['SELECT my appointments (list)'] ?? captured.examples?.['SELECT appointments ⋈ clinician'];
  const listSql = sent && /\$1\b/.test(sent) && !/\$4\b/.test(sent) && (/\$3\b/.test(sent) || !/\$2\b/.test(sent)) ? sent : LIST_QUERY;
  log(
    `the service's list query: ${captured.queries} round trip(s) for one request; ` +
      (listSql === sent ? 'SQL captured for EXPLAIN' : `could not capture its SQL (using LIST_QUERY from bench/lib/booking-data.ts)`),
  );

  const targets: LoadTarget[] = [
    { target: 'p', label: LABELS.p, child: a, requests: pkRequests, database: dbA },
    // The bare list read reads database b (as a superuser): its profile samples that one.
    { target: 'a', label: LABELS.a, child: a, requests: baselineRequests, database: dbB },
    { target: 'b', label: LABELS.b, child: b, requests: serviceRequests, database: dbB },
  ];
  const runs = await measureRounds(targets, opts.rounds, mo);
  const profiles = await profileRuns(targets.slice(1), opts.profileS, mo);
  log(`EXPLAIN ANALYZE of the list query, ${opts.explainRuns}× as the service role with the principal set, ${opts.explainRuns}× as the superuser`);
  const plans = await explainListQuery(dbB, readerIds, listSql, opts.explainRuns);

  // --- write ---
  const slots = await prepareSlots(b.port, readers[0]!.cookie, data.clinicianIds);
  const days = new Set(slots.map((s) => s.startsAt.slice(0, 10))).size;
  log(
    `race: ${opts.clients} clients, ${slots.length} free slots (${new Set(slots.map((s) => s.clinicianId)).size} clinicians, ${days} dates, ` +
      `${slots.map((s) => s.startsAt).sort()[0]} … ${slots.map((s) => s.startsAt).sort().at(-1)}), ${data.bookers.length} booking patients, ` +
      `each client picks among the first ${opts.window} slots not known to be gone`,
  );
  await b.call('usage-reset');
  const cpu0 = cpuSnapshot();
  const race = await runBookingRace({
    host: HOST,
    port: b.port,
    clients: opts.clients,
    slots,
    patients: data.bookers,
    window: opts.window,
    deadlineMs: opts.raceDeadlineS * 1000,
    timeoutMs: opts.timeoutS * 1000,
  });
  const cpu1 = cpuSnapshot();
  const raceUsage = await b.call<{ cpuCores: number; cpuMs: number; eventLoopUtilization: number }>('usage');
  const raceMachine = busyCores(cpu0, cpu1, os.cpus().length);
  const bookingsPerS = race.created / (race.wallMs / 1000);
  log(
    `race done in ${fmt(race.wallMs / 1000, 2)} s: ${race.attempts} attempts, ${race.created} × 201, ${race.slotTaken} × 409 slot_taken, ` +
      `${race.failures.total} failures; server ${fmt(raceUsage.cpuCores, 2)} cores, machine ${fmt(raceMachine, 2)}/${os.cpus().length}`,
  );
  if (race.failures.total > 0 || race.timedOut) {
    loud([
      `BENCH FAILED: the booking race ${race.timedOut ? `did not finish within ${opts.raceDeadlineS} s` : 'had failures'}`,
      `by kind: ${JSON.stringify(race.failures.byKind)}`,
      ...race.failures.examples,
    ]);
    throw new BenchFailure('booking race failed');
  }
  const verification = await verifyRace(dbB, slots, race, data.bookers.map((p) => p.id), data.rows.appointments!);

  // --- report ---
  const bestP = best(runs, 'p');
  const bestA = best(runs, 'a');
  const bestB = best(runs, 'b');
  const ratio = bestB.result.rps / bestA.result.rps;
  const ratioP = bestB.result.rps / bestP.result.rps;
  console.log('');
  console.log(
    `DATA   ${opts.dataPatients} patients, ${opts.dataClinicians} clinicians, ${data.rows.appointments} appointments ` +
      `(${data.rows['appointments upcoming (booked, future)']} upcoming): loaded in ${fmt(data.loadMs / 1000, 2)} s + VACUUM ANALYZE ${fmt(data.vacuumAnalyzeMs / 1000, 2)} s`,
  );
  console.log('');
  printRuns(runs, LABELS);
  console.log('');
  printBest(runs, { p: 'primary-key read', a: 'bare list read', b: 'GET /api/appointments' });
  console.log(
    `READ   ratio b/a: ${ratio.toFixed(ratio < 0.1 ? 4 : 2)} (target ≥ ${TARGET_RATIO.toFixed(2)}: ${ratio >= TARGET_RATIO ? 'met' : 'NOT MET'}); ` +
      `p99 b/a: ${(bestB.result.latencyMs.p99 / bestA.result.latencyMs.p99).toFixed(2)}; ` +
      `for reference, b/p (against the primary-key read, the baseline of runs before this one): ${ratioP.toFixed(2)}`,
  );
  for (const p of profiles) printProfile(p);
  printPlans(plans, listSql);
  console.log('');
  printTable(
    ['booking race', 'count', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'],
    [
      ['all attempts', String(race.attempts), fmt(race.latencyMs.all.p50, 1), fmt(race.latencyMs.all.p90, 1), fmt(race.latencyMs.all.p99, 1), fmt(race.latencyMs.all.max, 1)],
      ['201 created', String(race.created), fmt(race.latencyMs.created.p50, 1), fmt(race.latencyMs.created.p90, 1), fmt(race.latencyMs.created.p99, 1), fmt(race.latencyMs.created.max, 1)],
      ['409 slot_taken', String(race.slotTaken), fmt(race.latencyMs.slotTaken.p50, 1), fmt(race.latencyMs.slotTaken.p90, 1), fmt(race.latencyMs.slotTaken.p99, 1), fmt(race.latencyMs.slotTaken.max, 1)],
    ],
  );
  console.log(
    `WRITE  ${fmt(bookingsPerS, 1)} bookings/s (${race.created} in ${fmt(race.wallMs / 1000, 2)} s, ${opts.clients} clients), ` +
      `${fmt(race.attempts / (race.wallMs / 1000), 1)} attempts/s, p99 ${fmt(race.latencyMs.all.p99, 1)} ms (201s: ${fmt(race.latencyMs.created.p99, 1)} ms); ` +
      `${fmt(race.attemptsPerSlot.mean, 2)} requests per slot (max ${race.attemptsPerSlot.max}); ` +
      `server ${fmt(raceUsage.cpuMs / race.attempts, 2)} ms CPU per attempt; generator loop ${fmt(race.generatorEventLoopUtilization * 100, 0)}%`,
  );
  console.log(
    `CHECK  winners ${race.created} == slots ${slots.length}: ${race.created === slots.length ? 'yes' : 'NO'}; database: ${verification.bookingsInDatabase} race bookings, ` +
      `${verification.slotsWithExactlyOneBooking} slots with exactly one, ${verification.slotsWithMoreThanOne} with more, ${verification.liveDuplicatesAnywhere} duplicates anywhere, ` +
      `${verification.appointmentsTotal} appointments (expected ${verification.appointmentsExpected}), ${verification.auditBookEvents} audit events, ` +
      `${verification.bookedNotifications} notifications; 201 ids match: ${verification.winnersMatchDatabase ? 'yes' : 'NO'}`,
  );

  bench.writeResults({
    options: { ...opts, bookers, slotMinutes: SLOT_MINUTES },
    machine: { postgres: pg.version, postgresSettings: pg.settings },
    data: {
      registerReadPatientsS: registerS,
      loadS: data.loadMs / 1000,
      vacuumAnalyzeS: data.vacuumAnalyzeMs / 1000,
      rows: data.rows,
      perPatient: data.perPatient,
      readPatientAppointments: data.readPatientAppointments,
      listResponseBytes: listBytes,
    },
    read: {
      targets: {
        p: 'bare Fastify route, pg Pool, one primary-key read of a profile-shaped row (no auth, no RLS, no audit): reference only',
        a: "bare Fastify route, pg Pool, the same patient's appointments in one statement as a superuser (no auth, no RLS, no audit, no response schema); same JSON body as b",
        b: "createService: GET /api/appointments with a patient session cookie (the patient's upcoming and past appointments)",
      },
      ...runsRecord(runs, ['p', 'a', 'b']),
      ratio: {
        rps: ratio,
        target: TARGET_RATIO,
        met: ratio >= TARGET_RATIO,
        p99: bestB.result.latencyMs.p99 / bestA.result.latencyMs.p99,
        rpsAgainstPrimaryKeyRead: ratioP,
      },
      profiles,
      listQuery: { sql: listSql, capturedFromService: listSql === sent, plans },
    },
    write: {
      clients: opts.clients,
      slots: slots.length,
      window: opts.window,
      slotClinicians: new Set(slots.map((s) => s.clinicianId)).size,
      slotDates: days,
      wallS: race.wallMs / 1000,
      bookingsPerS,
      attemptsPerS: race.attempts / (race.wallMs / 1000),
      attempts: race.attempts,
      created: race.created,
      slotTaken: race.slotTaken,
      attemptsPerSlot: race.attemptsPerSlot,
      latencyMs: race.latencyMs,
      patientsUsed: race.patientsUsed,
      serverCpuCores: raceUsage.cpuCores,
      serverCpuMsPerAttempt: raceUsage.cpuMs / race.attempts,
      serverEventLoopUtilization: raceUsage.eventLoopUtilization,
      machineBusyCores: raceMachine,
      generatorEventLoopUtilization: race.generatorEventLoopUtilization,
      verification,
    },
  });
  if (!verification.ok) {
    loud(['BENCH FAILED: the database does not show exactly one booking per slot', ...verification.problems]);
    throw new BenchFailure('booking verification failed');
  }
});
