/**
 * npm run bench:read — what the security spine costs on a simple authenticated read.
 *
 *   (a) baseline: bare Fastify + pg, one primary-key read, no auth / RLS / audit;
 *   (b) the real service (createService) on PostgreSQL: GET /api/profile with a patient's
 *       session cookie — session, scoped transaction as the service role, RLS, audit, egress.
 *
 * Both run in their own child process; the load generator runs here. Runs go a, b, a, b and
 * the best of each is kept (a shared 2-core machine is noisy). Then a short profiling run of
 * each counts round trips to PostgreSQL and samples what the backends were doing.
 *
 * Env: BENCH_DURATION_S (10), BENCH_WARMUP_S (2), BENCH_CONNECTIONS (64), BENCH_PATIENTS (200),
 *      BENCH_POOL_SIZE (20, the service's default), BENCH_PROFILE_S (3, 0 = skip profiling),
 *      BENCH_ROUNDS (2: a, b, a, b).
 * Any failed request (non-2xx, socket error, timeout) fails the run (exit 1).
 */
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { OWNER_ROLE, preparePostgres, seedBaseline, SERVICE_ROLE, urlFor } from './lib/bench-db';
import { BenchFailure, runBench } from './lib/harness';
import { getJson, registerPatients, sameLengthCookie, type RequestSpec } from './lib/loadgen';
import {
  best,
  closedLoopOptions,
  measureRounds,
  printBest,
  printProfile,
  printRuns,
  profileRuns,
  runsRecord,
  type LoadTarget,
  type MeasureOptions,
} from './lib/measure';

const here = path.dirname(fileURLToPath(import.meta.url));
const HOST = '127.0.0.1';
const TARGET_RATIO = 0.6;
const LABELS = { a: 'baseline', b: 'service' } as const;

const opts = closedLoopOptions(5000);

// Setup (migrations, argon2 for every registration) + 2 × rounds measured runs + 2 profiling runs.
const budgetMs =
  30_000 + opts.patients * 100 + 2 * opts.rounds * (opts.warmupS + opts.durationS + 3) * 1000 + 2 * (opts.profileS + 5) * 1000;

async function preflight(port: number, spec: RequestSpec, expectId: string | undefined, what: string) {
  const body = await getJson<{ patientId?: string }>(HOST, port, spec, `${what} preflight`);
  if (!body.patientId || (expectId && body.patientId !== expectId)) throw new BenchFailure(`${what} preflight: unexpected body ${JSON.stringify(body).slice(0, 300)}`);
}

runBench('read', { budgetMs }, async (bench) => {
  const { log } = bench;
  const mo: MeasureOptions = { host: HOST, connections: opts.connections, warmupS: opts.warmupS, durationS: opts.durationS, log };
  log(
    `duration ${opts.durationS}s (+${opts.warmupS}s warm-up) × ${opts.rounds} rounds, ${opts.connections} connections, ${opts.patients} patients, pool ${opts.poolSize}; ` +
      `${os.cpus().length} CPUs, Node ${process.version}`,
  );
  const pg = await preparePostgres(log);
  log(`PostgreSQL ${pg.version}; ${Object.entries(pg.settings).map(([k, v]) => `${k}=${v}`).join(', ')}`);

  // (a) its own fresh database with a plain table.
  const dbA = await bench.createDatabase('a');
  const ids = await seedBaseline(dbA, opts.patients);
  // (b) a fresh database owned by the owner role; the service migrates it as the owner at start.
  const dbB = await bench.createDatabase('b');

  const a = await bench.startChild('baseline', path.join(here, 'lib/baseline-server.ts'), [urlFor(OWNER_ROLE, dbA), String(opts.poolSize)]);
  const b = await bench.startChild('service', path.join(here, 'lib/service-server.ts'), [urlFor(SERVICE_ROLE, dbB), urlFor(OWNER_ROLE, dbB), String(opts.poolSize)]);
  log(`baseline on :${a.port} (pid ${a.pid}), service on :${b.port} (pid ${b.pid}); registering ${opts.patients} patients through the API`);

  const t0 = Date.now();
  const cookies = (await registerPatients(HOST, b.port, opts.patients)).map((p) => p.cookie);
  log(`registered ${cookies.length} patients in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const ua = { 'user-agent': 'confidant-bench' };
  const serviceRequests: RequestSpec[] = cookies.map((cookie) => ({ path: '/api/profile', headers: { ...ua, cookie } }));
  const dummyCookie = sameLengthCookie(cookies[0]!);
  const baselineRequests: RequestSpec[] = ids.map((id) => ({ path: `/item/${id}`, headers: { ...ua, cookie: dummyCookie } }));
  await preflight(a.port, baselineRequests[0]!, ids[0], 'baseline');
  await preflight(b.port, serviceRequests[0]!, undefined, 'service');

  const targets: LoadTarget[] = [
    { target: 'a', label: LABELS.a, child: a, requests: baselineRequests, database: dbA },
    { target: 'b', label: LABELS.b, child: b, requests: serviceRequests, database: dbB },
  ];
  const runs = await measureRounds(targets, opts.rounds, mo);
  const profiles = await profileRuns(targets, opts.profileS, mo);

  const bestA = best(runs, 'a');
  const bestB = best(runs, 'b');
  const ratio = bestB.result.rps / bestA.result.rps;

  console.log('');
  printRuns(runs, LABELS);
  console.log('');
  printBest(runs, LABELS);
  console.log(
    `ratio b/a: ${ratio.toFixed(2)} (target ≥ ${TARGET_RATIO.toFixed(2)}: ${ratio >= TARGET_RATIO ? 'met' : 'NOT MET'}); ` +
      `p99 b/a: ${(bestB.result.latencyMs.p99 / bestA.result.latencyMs.p99).toFixed(2)}`,
  );
  for (const p of profiles) printProfile(p);

  bench.writeResults({
    options: opts,
    machine: { postgres: pg.version, postgresSettings: pg.settings },
    targets: {
      a: 'bare Fastify route, pg Pool, one primary-key read (no auth, no RLS, no audit)',
      b: 'createService: GET /api/profile with a patient session cookie (session, scoped transaction, RLS, audit, egress check)',
    },
    ...runsRecord(runs, ['a', 'b']),
    ratio: { rps: ratio, target: TARGET_RATIO, met: ratio >= TARGET_RATIO, p99: bestB.result.latencyMs.p99 / bestA.result.latencyMs.p99 },
    profiles,
  });
});
