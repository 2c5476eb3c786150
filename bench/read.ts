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
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ActivityProfile } from './lib/bench-db';
import {
  commitSettings,
  createDatabase,
  dropDatabases,
  dropLeftovers,
  ensureRoles,
  OWNER_ROLE,
  sampleActivity,
  seedBaseline,
  serverVersion,
  SERVICE_ROLE,
  urlFor,
} from './lib/bench-db';
import { startChild, type ChildServer } from './lib/child';
import { busyCores, cpuSnapshot } from './lib/cpu';
import { runLoad, send, type LoadResult, type RequestSpec } from './lib/loadgen';
import type { CpuSummary } from './lib/cpu-profile';
import type { PgProfile } from './lib/pg-instrument';

const here = path.dirname(fileURLToPath(import.meta.url));
const HOST = '127.0.0.1';
const TARGET_RATIO = 0.6;

function envInt(name: string, def: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) throw new Error(`${name} must be a number from ${min} to ${max} (got "${raw}")`);
  return n;
}

const opts = {
  durationS: envInt('BENCH_DURATION_S', 10, 1, 300),
  warmupS: envInt('BENCH_WARMUP_S', 2, 0, 60),
  connections: envInt('BENCH_CONNECTIONS', 64, 1, 1000),
  patients: envInt('BENCH_PATIENTS', 200, 1, 5000),
  poolSize: envInt('BENCH_POOL_SIZE', 20, 1, 200),
  profileS: envInt('BENCH_PROFILE_S', 3, 0, 60),
  /** a, b pairs; the best run of each target counts. */
  rounds: envInt('BENCH_ROUNDS', 2, 1, 10),
};

// Setup (migrations, argon2 for every registration) + 2 × rounds measured runs + 2 profiling runs.
const budgetMs =
  30_000 + opts.patients * 100 + 2 * opts.rounds * (opts.warmupS + opts.durationS + 3) * 1000 + 2 * (opts.profileS + 5) * 1000;

interface RunRecord {
  target: 'a' | 'b';
  round: number;
  result: LoadResult;
  serverCpuCores: number;
  serverEventLoopUtilization: number;
  machineBusyCores: number;
}

class BenchFailure extends Error {}

const children: ChildServer[] = [];
const databases: string[] = [];
let cleaning: Promise<void> | undefined;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const c of children.splice(0)) await c.stop().catch((e) => console.error(`stopping ${c.name}: ${String(e)}`));
    await dropDatabases(databases.splice(0)).catch((e) => console.error(`dropping bench databases: ${String(e)}`));
  })();
  return cleaning;
}

/** Which code was measured: the commit, and a fingerprint of any uncommitted change under src/. */
function codeVersion(): { commit: string | null; srcChanges: string | null } {
  const git = (args: string[]) => execFileSync('git', args, { cwd: path.join(here, '..'), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const commit = git(['rev-parse', 'HEAD']).trim();
    const diff = git(['diff', 'HEAD', '--', 'src']) + git(['ls-files', '--others', '--exclude-standard', '--', 'src']);
    return { commit, srcChanges: diff ? createHash('sha256').update(diff).digest('hex').slice(0, 12) : null };
  } catch {
    return { commit: null, srcChanges: null };
  }
}

function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

function log(msg: string) {
  console.log(`[bench:read] ${msg}`);
}

async function registerPatients(port: number, n: number): Promise<string[]> {
  const runId = randomBytes(4).toString('hex');
  const cookies: string[] = new Array(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const body = JSON.stringify({
        givenName: 'Bench',
        familyName: `Patient ${i}`,
        dateOfBirth: '1980-01-01',
        email: `bench.${runId}.${i}@example.com`,
        password: randomBytes(12).toString('base64url'),
      });
      const res = await send(
        undefined,
        HOST,
        port,
        {
          method: 'POST',
          path: '/api/auth/register',
          headers: { 'content-type': 'application/json', 'x-csrf-token': 'none', 'user-agent': 'confidant-bench' },
          body,
        },
        30_000,
      );
      if (res.status !== 201) throw new BenchFailure(`registering patient ${i}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
      const setCookie = ([] as string[]).concat(res.headers['set-cookie'] ?? []);
      const session = setCookie.map((c) => /^confidant_session=([^;]+)/.exec(c)?.[1]).find(Boolean);
      if (!session) throw new BenchFailure(`registering patient ${i}: no confidant_session cookie in the answer`);
      cookies[i] = `confidant_session=${session}`;
    }
  };
  // argon2id (19 MiB, t=2) per registration: a few at a time keeps the 2 cores busy without thrashing.
  await Promise.all(Array.from({ length: Math.min(4, n) }, worker));
  return cookies;
}

async function preflight(port: number, spec: RequestSpec, expectId: string | undefined, what: string) {
  const res = await send(undefined, HOST, port, spec);
  if (res.status !== 200) throw new BenchFailure(`${what} preflight: HTTP ${res.status} ${res.body.slice(0, 300)}`);
  const body = JSON.parse(res.body) as { patientId?: string };
  if (!body.patientId || (expectId && body.patientId !== expectId)) throw new BenchFailure(`${what} preflight: unexpected body ${res.body.slice(0, 300)}`);
}

async function measure(target: 'a' | 'b', round: number, child: ChildServer, requests: RequestSpec[]): Promise<RunRecord> {
  log(`run ${round}/${target === 'a' ? 'a (baseline)' : 'b (service)'}: ${opts.warmupS}s warm-up + ${opts.durationS}s, ${opts.connections} connections`);
  await child.call('usage-reset');
  const cpu0 = cpuSnapshot();
  const result = await runLoad({
    host: HOST,
    port: child.port,
    connections: opts.connections,
    warmupS: opts.warmupS,
    durationS: opts.durationS,
    requests,
  });
  const cpu1 = cpuSnapshot();
  const usage = await child.call<{ cpuCores: number; eventLoopUtilization: number }>('usage');
  const rec: RunRecord = {
    target,
    round,
    result,
    serverCpuCores: usage.cpuCores,
    serverEventLoopUtilization: usage.eventLoopUtilization,
    machineBusyCores: busyCores(cpu0, cpu1, os.cpus().length),
  };
  if (result.errors.total > 0) {
    const lines = [
      '',
      '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
      `!! BENCH FAILED: ${result.errors.total} failed request(s) against ${target === 'a' ? 'the baseline' : 'the service'} (run ${round})`,
      `!! by kind: ${JSON.stringify(result.errors.byKind)}`,
      ...result.errors.examples.map((e) => `!!   ${e}`),
      '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
    ];
    console.error(lines.join('\n'));
    throw new BenchFailure(`${result.errors.total} failed request(s)`);
  }
  log(
    `  ${fmt(result.rps, 0)} req/s, p50 ${fmt(result.latencyMs.p50, 2)} ms, p99 ${fmt(result.latencyMs.p99, 2)} ms, ` +
      `server ${fmt(rec.serverCpuCores, 2)} cores (event loop ${fmt(rec.serverEventLoopUtilization * 100, 0)}%), ` +
      `machine ${fmt(rec.machineBusyCores, 2)}/${os.cpus().length} cores, generator loop ${fmt(result.generatorEventLoopUtilization * 100, 0)}%`,
  );
  return rec;
}

interface ProfileRecord {
  target: 'a' | 'b';
  rps: number;
  requests: number;
  wallS: number;
  roundTripsPerRequest: number;
  transactionsPerRequest: number;
  pg: PgProfile;
  activity: ActivityProfile | null;
  /** The server process's CPU while profiling, from V8's sampling profiler. */
  serverCpu: CpuSummary & { cpuCores: number; cpuMsPerRequest: number };
}

async function profile(target: 'a' | 'b', child: ChildServer, requests: RequestSpec[], database: string): Promise<ProfileRecord> {
  log(`profiling ${target === 'a' ? 'a (baseline)' : 'b (service)'}: ${opts.profileS}s with query counting and pg_stat_activity sampling`);
  const sampler = sampleActivity(database);
  await child.call('profile-start');
  await child.call('usage-reset');
  await sampler.start();
  // Counting is on from the first request to the last answer, so per-request ratios are exact;
  // req/s and latency come from the window after a 1 s warm-up (pools reopen after idling).
  const result = await runLoad({ host: HOST, port: child.port, connections: opts.connections, warmupS: 1, durationS: opts.profileS, requests });
  const usage = await child.call<{ cpuMs: number; cpuCores: number }>('usage');
  const { pg: pgProfile, cpu } = await child.call<{ pg: PgProfile; cpu: CpuSummary }>('profile-stop');
  const activity = await sampler.stop();
  if (result.errors.total > 0) throw new BenchFailure(`${result.errors.total} failed request(s) while profiling ${target}: ${result.errors.examples.join('; ')}`);
  const sent = result.completedAll;
  return {
    target,
    rps: result.rps,
    requests: sent,
    wallS: pgProfile.wallMs / 1000,
    roundTripsPerRequest: pgProfile.queries / sent,
    transactionsPerRequest: pgProfile.transaction.count / sent,
    pg: pgProfile,
    activity,
    serverCpu: { ...cpu, cpuCores: usage.cpuCores, cpuMsPerRequest: usage.cpuMs / sent },
  };
}

function best(runs: RunRecord[], target: 'a' | 'b'): RunRecord {
  return runs.filter((r) => r.target === target).sort((x, y) => y.result.rps - x.result.rps)[0]!;
}

function printTable(runs: RunRecord[]) {
  const head = ['run', 'target', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'errors', 'server cores', 'server loop', 'machine cores', 'gen loop'];
  const rows = runs.map((r) => [
    String(r.round),
    r.target === 'a' ? 'a baseline' : 'b service',
    fmt(r.result.rps, 0),
    fmt(r.result.latencyMs.p50, 2),
    fmt(r.result.latencyMs.p99, 2),
    fmt(r.result.latencyMs.max, 1),
    String(r.result.errors.total),
    fmt(r.serverCpuCores, 2),
    `${fmt(r.serverEventLoopUtilization * 100, 0)}%`,
    fmt(r.machineBusyCores, 2),
    `${fmt(r.result.generatorEventLoopUtilization * 100, 0)}%`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

function printProfile(p: ProfileRecord) {
  console.log(
    `\n${p.target === 'a' ? '(a) baseline' : '(b) service'} profile: ${fmt(p.rps, 0)} req/s while counting; ` +
      `${fmt(p.roundTripsPerRequest, 2)} round trips and ${fmt(p.transactionsPerRequest, 2)} transactions per request`,
  );
  const head = ['statement', 'count', 'per req', 'mean ms', 'p50 ms', 'p99 ms'];
  const rows = p.pg.statements.map((s) => [s.kind, String(s.count), fmt(s.count / p.requests, 2), fmt(s.meanMs, 2), fmt(s.p50Ms, 2), fmt(s.p99Ms, 2)]);
  rows.push(['(waiting for a pooled connection)', String(p.pg.poolAcquire.count), '', fmt(p.pg.poolAcquire.meanMs, 2), '', fmt(p.pg.poolAcquire.p99Ms, 2)]);
  if (p.pg.transaction.count) {
    rows.push(['(BEGIN sent → COMMIT answered)', String(p.pg.transaction.count), '', fmt(p.pg.transaction.meanMs, 2), '', fmt(p.pg.transaction.p99Ms, 2)]);
  }
  if (p.pg.auditTransaction.count) {
    rows.push([
      '(… of which transactions with audit rows)',
      String(p.pg.auditTransaction.count),
      fmt(p.pg.auditTransaction.count / p.requests, 2),
      fmt(p.pg.auditTransaction.meanMs, 2),
      '',
      fmt(p.pg.auditTransaction.p99Ms, 2),
    ]);
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(head));
  for (const r of rows) console.log(line(r));
  const bk = Object.entries(p.pg.batchedKinds ?? {}).sort((x, y) => y[1] - x[1]);
  if (bk.length) console.log(`batched in front of those, per request: ${bk.map(([k, n]) => `${k} ${fmt(n / p.requests, 2)}`).join(', ')}`);
  const rb = p.pg.readBatches;
  if (rb?.batches) {
    console.log(`multiplexed reads: ${rb.reads} reads in ${rb.batches} batches (${fmt(rb.reads / rb.batches, 1)} reads per batch, one round trip each)`);
  }
  if (p.pg.chainLockHold.count) {
    const util = p.pg.chainLockHold.totalMs / p.pg.wallMs;
    console.log(
      `audit chain head row lock held (≥ INSERT answered → COMMIT answered): mean ${fmt(p.pg.chainLockHold.meanMs, 2)} ms, ` +
        `p99 ${fmt(p.pg.chainLockHold.p99Ms, 2)} ms; held ${fmt(util * 100, 0)}% of the time ` +
        `(ceiling ≈ ${fmt(1000 / p.pg.chainLockHold.meanMs, 0)} audited transactions/s if nothing else changed)`,
    );
  }
  if (p.pg.audit.inserts) {
    console.log(
      `audit: ${p.pg.audit.rows} rows in ${p.pg.audit.inserts} INSERTs (${fmt(p.pg.audit.rows / p.pg.audit.inserts, 1)} rows per INSERT, ` +
        `${fmt(p.pg.audit.rows / p.requests, 2)} rows per request)`,
    );
  }
  if (p.activity) {
    console.log(`PostgreSQL backends of this database, mean count by state (${p.activity.samples} samples of pg_stat_activity):`);
    for (const [k, v] of Object.entries(p.activity.meanBackends)) console.log(`  ${fmt(v, 2).padStart(6)}  ${k}`);
    if (p.activity.backendCpuMs !== null) {
      console.log(`PostgreSQL backend CPU: ${fmt(p.activity.backendCpuMs / p.requests, 3)} ms per request (${fmt(p.activity.backendCpuMs / 1000 / p.wallS, 2)} cores)`);
    }
  }
  const c = p.serverCpu;
  console.log(
    `server process CPU: ${fmt(c.cpuCores, 2)} cores, ${fmt(c.cpuMsPerRequest, 3)} ms CPU per request (all threads, profiler on); ` +
      `main thread, share of busy self time by place:`,
  );
  console.log(`  ${c.byPlace.slice(0, 10).map((x) => `${x.place} ${fmt(x.pct, 1)}%`).join(', ')}`);
  console.log('  hottest functions (self time):');
  for (const f of c.topFunctions.slice(0, 8)) console.log(`    ${fmt(f.pct, 1).padStart(5)}%  ${f.fn}`);
}

async function main() {
  const started = Date.now();
  const guard = setTimeout(() => {
    console.error(`\n!! BENCH FAILED: still running after ${Math.round(budgetMs / 1000)} s; stopping.`);
    void cleanup().finally(() => process.exit(1));
  }, budgetMs);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      console.error(`\n[bench:read] ${sig}: cleaning up`);
      void cleanup().finally(() => process.exit(130));
    });
  }

  const code = codeVersion();
  try {
    log(
      `code ${code.commit?.slice(0, 12) ?? 'unknown'}${code.srcChanges ? ` + uncommitted src/ changes (fingerprint ${code.srcChanges})` : ''}`,
    );
    log(
      `duration ${opts.durationS}s (+${opts.warmupS}s warm-up) × ${opts.rounds} rounds, ${opts.connections} connections, ${opts.patients} patients, pool ${opts.poolSize}; ` +
        `${os.cpus().length} CPUs, Node ${process.version}`,
    );
    const pgVersion = await serverVersion();
    const settings = await commitSettings();
    log(`PostgreSQL ${pgVersion}; ${Object.entries(settings).map(([k, v]) => `${k}=${v}`).join(', ')}`);
    await ensureRoles();
    const leftovers = await dropLeftovers();
    if (leftovers.length) log(`dropped leftover bench databases: ${leftovers.join(', ')}`);

    // (a) its own fresh database with a plain table.
    const dbA = await createDatabase('a');
    databases.push(dbA);
    const ids = await seedBaseline(dbA, opts.patients);
    // (b) a fresh database owned by the owner role; the service migrates it as the owner at start.
    const dbB = await createDatabase('b');
    databases.push(dbB);

    const a = await startChild('baseline', path.join(here, 'lib/baseline-server.ts'), [urlFor(OWNER_ROLE, dbA), String(opts.poolSize)]);
    children.push(a);
    const b = await startChild('service', path.join(here, 'lib/service-server.ts'), [
      urlFor(SERVICE_ROLE, dbB),
      urlFor(OWNER_ROLE, dbB),
      String(opts.poolSize),
    ]);
    children.push(b);
    log(`baseline on :${a.port} (pid ${a.pid}), service on :${b.port} (pid ${b.pid}); registering ${opts.patients} patients through the API`);

    const t0 = Date.now();
    const cookies = await registerPatients(b.port, opts.patients);
    log(`registered ${cookies.length} patients in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const ua = { 'user-agent': 'confidant-bench' };
    const serviceRequests: RequestSpec[] = cookies.map((cookie) => ({ path: '/api/profile', headers: { ...ua, cookie } }));
    // Same header bytes as (b): a cookie of the same length, which the baseline ignores.
    const dummyCookie = `confidant_session=${'x'.repeat(cookies[0]!.length - 'confidant_session='.length)}`;
    const baselineRequests: RequestSpec[] = ids.map((id) => ({ path: `/item/${id}`, headers: { ...ua, cookie: dummyCookie } }));
    await preflight(a.port, baselineRequests[0]!, ids[0], 'baseline');
    await preflight(b.port, serviceRequests[0]!, undefined, 'service');

    const runs: RunRecord[] = [];
    for (let round = 1; round <= opts.rounds; round++) {
      runs.push(await measure('a', round, a, baselineRequests));
      runs.push(await measure('b', round, b, serviceRequests));
    }

    const profiles: ProfileRecord[] = [];
    if (opts.profileS > 0) {
      profiles.push(await profile('a', a, baselineRequests, dbA));
      profiles.push(await profile('b', b, serviceRequests, dbB));
    }

    const bestA = best(runs, 'a');
    const bestB = best(runs, 'b');
    const ratio = bestB.result.rps / bestA.result.rps;

    console.log('');
    printTable(runs);
    console.log('');
    console.log(`best (a) baseline: ${fmt(bestA.result.rps, 0)} req/s, p50 ${fmt(bestA.result.latencyMs.p50, 2)} ms, p99 ${fmt(bestA.result.latencyMs.p99, 2)} ms`);
    console.log(`best (b) service:  ${fmt(bestB.result.rps, 0)} req/s, p50 ${fmt(bestB.result.latencyMs.p50, 2)} ms, p99 ${fmt(bestB.result.latencyMs.p99, 2)} ms`);
    console.log(
      `ratio b/a: ${ratio.toFixed(2)} (target ≥ ${TARGET_RATIO.toFixed(2)}: ${ratio >= TARGET_RATIO ? 'met' : 'NOT MET'}); ` +
        `p99 b/a: ${(bestB.result.latencyMs.p99 / bestA.result.latencyMs.p99).toFixed(2)}`,
    );
    for (const p of profiles) printProfile(p);

    const out = {
      benchmark: 'read',
      finishedAt: new Date().toISOString(),
      elapsedS: (Date.now() - started) / 1000,
      options: opts,
      code,
      machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? null, node: process.version, postgres: pgVersion, postgresSettings: settings },
      targets: {
        a: 'bare Fastify route, pg Pool, one primary-key read (no auth, no RLS, no audit)',
        b: 'createService: GET /api/profile with a patient session cookie (session, scoped transaction, RLS, audit, egress check)',
      },
      runs: runs.map((r) => ({
        target: r.target,
        round: r.round,
        rps: r.result.rps,
        requests: r.result.requests,
        latencyMs: r.result.latencyMs,
        errors: r.result.errors.total,
        serverCpuCores: r.serverCpuCores,
        serverEventLoopUtilization: r.serverEventLoopUtilization,
        machineBusyCores: r.machineBusyCores,
        generatorEventLoopUtilization: r.result.generatorEventLoopUtilization,
      })),
      best: {
        a: { round: bestA.round, rps: bestA.result.rps, latencyMs: bestA.result.latencyMs },
        b: { round: bestB.round, rps: bestB.result.rps, latencyMs: bestB.result.latencyMs },
      },
      ratio: { rps: ratio, target: TARGET_RATIO, met: ratio >= TARGET_RATIO, p99: bestB.result.latencyMs.p99 / bestA.result.latencyMs.p99 },
      profiles,
    };
    const dir = path.join(here, 'results');
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'read-latest.json');
    writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
    log(`wrote ${path.relative(process.cwd(), file)} (${((Date.now() - started) / 1000).toFixed(0)} s in all)`);
  } finally {
    clearTimeout(guard);
    await cleanup();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    if (!(err instanceof BenchFailure)) console.error(err);
    console.error(`\n[bench:read] FAILED: ${err instanceof Error ? err.message : String(err)}`);
    void cleanup().finally(() => process.exit(1));
  },
);
