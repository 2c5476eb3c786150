import os from 'node:os';
import type { ActivityProfile } from './bench-db';
import { sampleActivity } from './bench-db';
import type { ChildServer } from './child';
import { busyCores, cpuSnapshot } from './cpu';
import type { CpuSummary } from './cpu-profile';
import { BenchFailure, envInt, envNum, loud } from './harness';
import { runLoad, type LoadResult, type RequestSpec } from './loadgen';
import type { PgProfile } from './pg-instrument';

/**
 * Closed-loop HTTP benches (bench:read, bench:booking): one measured run and one profiling run
 * against a child server, the best run of each target, and their printing.
 */

/**
 * The options both benches share (README: bench:read's table): BENCH_DURATION_S (10), BENCH_WARMUP_S (2),
 * BENCH_CONNECTIONS (64), BENCH_PATIENTS (200), BENCH_POOL_SIZE (20), BENCH_PROFILE_S (3, 0 = skip),
 * BENCH_ROUNDS (2; the best run of each target counts).
 */
export function closedLoopOptions(maxPatients: number) {
  return {
    durationS: envNum('BENCH_DURATION_S', 10, 1, 300),
    warmupS: envNum('BENCH_WARMUP_S', 2, 0, 60),
    connections: envInt('BENCH_CONNECTIONS', 64, 1, 1000),
    patients: envInt('BENCH_PATIENTS', 200, 1, maxPatients),
    poolSize: envInt('BENCH_POOL_SIZE', 20, 1, 200),
    profileS: envNum('BENCH_PROFILE_S', 3, 0, 60),
    rounds: envInt('BENCH_ROUNDS', 2, 1, 10),
  };
}

export interface MeasureOptions {
  host: string;
  connections: number;
  warmupS: number;
  durationS: number;
  log: (msg: string) => void;
  /** Per-request timeout (a timeout is a failed request); loadgen's default (10 s) if unset. */
  timeoutMs?: number;
}

/** a: the baseline, b: the service, p: a second, reference baseline (bench:booking's primary-key read). */
export type Target = 'a' | 'b' | 'p';

export interface RunRecord {
  target: Target;
  round: number;
  result: LoadResult;
  serverCpuCores: number;
  serverEventLoopUtilization: number;
  machineBusyCores: number;
}

export function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

/** A server under load: its requests are sent round-robin. */
export interface LoadTarget {
  target: Target;
  label: string;
  child: ChildServer;
  requests: RequestSpec[];
  /** The database whose backends a profiling run samples. */
  database: string;
}

/** `rounds` rounds of every target in turn (a, b, a, b, …: what drifts on a shared machine falls on each alike). */
export async function measureRounds(targets: LoadTarget[], rounds: number, o: MeasureOptions): Promise<RunRecord[]> {
  const runs: RunRecord[] = [];
  for (let round = 1; round <= rounds; round++) for (const t of targets) runs.push(await measureRun(t, round, o));
  return runs;
}

async function measureRun({ target, label, child, requests }: LoadTarget, round: number, o: MeasureOptions): Promise<RunRecord> {
  o.log(`run ${round}/${target} (${label}): ${o.warmupS}s warm-up + ${o.durationS}s, ${o.connections} connections`);
  await child.call('usage-reset');
  const cpu0 = cpuSnapshot();
  const result = await runLoad({
    host: o.host,
    port: child.port,
    connections: o.connections,
    warmupS: o.warmupS,
    durationS: o.durationS,
    requests,
    ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}),
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
    loud([
      `BENCH FAILED: ${result.errors.total} failed request(s) against ${label} (run ${round})`,
      `by kind: ${JSON.stringify(result.errors.byKind)}`,
      ...result.errors.examples.map((e) => `  ${e}`),
    ]);
    throw new BenchFailure(`${result.errors.total} failed request(s)`);
  }
  o.log(
    `  ${fmt(result.rps, 0)} req/s, p50 ${fmt(result.latencyMs.p50, 2)} ms, p99 ${fmt(result.latencyMs.p99, 2)} ms, ` +
      `server ${fmt(rec.serverCpuCores, 2)} cores (event loop ${fmt(rec.serverEventLoopUtilization * 100, 0)}%), ` +
      `machine ${fmt(rec.machineBusyCores, 2)}/${os.cpus().length} cores, generator loop ${fmt(result.generatorEventLoopUtilization * 100, 0)}%`,
  );
  return rec;
}

export interface ProfileRecord {
  target: Target;
  label: string;
  rps: number;
  requests: number;
  wallS: number;
  roundTripsPerRequest: number;
  transactionsPerRequest: number;
  pg: PgProfile;
  activity: ActivityProfile | null;
  serverCpu: CpuSummary & { cpuCores: number; cpuMsPerRequest: number };
}

/** A profiling run of each target in turn; none when `profileS` is 0. */
export async function profileRuns(targets: LoadTarget[], profileS: number, o: MeasureOptions): Promise<ProfileRecord[]> {
  const out: ProfileRecord[] = [];
  if (profileS > 0) for (const t of targets) out.push(await profileRun(t, profileS, o));
  return out;
}

async function profileRun({ target, label, child, requests, database }: LoadTarget, profileS: number, o: MeasureOptions): Promise<ProfileRecord> {
  o.log(`profiling ${target} (${label}): ${profileS}s with query counting, CPU sampling and pg_stat_activity sampling`);
  const sampler = sampleActivity(database);
  await child.call('profile-start');
  await child.call('usage-reset');
  await sampler.start();
  const result = await runLoad({
    host: o.host,
    port: child.port,
    connections: o.connections,
    warmupS: 1,
    durationS: profileS,
    requests,
    ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}),
  });
  const usage = await child.call<{ cpuMs: number; cpuCores: number }>('usage');
  const { pg: pgProfile, cpu } = await child.call<{ pg: PgProfile; cpu: CpuSummary }>('profile-stop');
  const activity = await sampler.stop();
  if (result.errors.total > 0) throw new BenchFailure(`${result.errors.total} failed request(s) while profiling ${label}: ${result.errors.examples.join('; ')}`);
  const sent = result.completedAll;
  return {
    target,
    label,
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

export function best(runs: RunRecord[], target: Target): RunRecord {
  return runs.filter((r) => r.target === target).sort((x, y) => y.result.rps - x.result.rps)[0]!;
}

/** `best (a) label: … req/s, p50 …, p99 …`, one line a target, the figures aligned. */
export function printBest(runs: RunRecord[], labels: Partial<Record<Target, string>>) {
  const width = Math.max(...Object.values(labels).map((l) => l.length + 1));
  for (const [t, label] of Object.entries(labels) as [Target, string][]) {
    const b = best(runs, t);
    console.log(`best (${t}) ${`${label}:`.padEnd(width)} ${fmt(b.result.rps, 0)} req/s, p50 ${fmt(b.result.latencyMs.p50, 2)} ms, p99 ${fmt(b.result.latencyMs.p99, 2)} ms`);
  }
}

/** The runs and the best of each target, for the results file. */
export function runsRecord(runs: RunRecord[], targets: Target[]) {
  return {
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
    best: Object.fromEntries(
      targets.map((t) => {
        const b = best(runs, t);
        return [t, { round: b.round, rps: b.result.rps, latencyMs: b.result.latencyMs }];
      }),
    ),
  };
}

export function printTable(head: string[], rows: string[][], leftColumns = 1) {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < leftColumns ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

export function printRuns(runs: RunRecord[], labels: Partial<Record<Target, string>>) {
  printTable(
    ['run', 'target', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'errors', 'server cores', 'server loop', 'machine cores', 'gen loop'],
    runs.map((r) => [
      String(r.round),
      `${r.target} ${labels[r.target] ?? ''}`,
      fmt(r.result.rps, 0),
      fmt(r.result.latencyMs.p50, 2),
      fmt(r.result.latencyMs.p99, 2),
      fmt(r.result.latencyMs.max, 1),
      String(r.result.errors.total),
      fmt(r.serverCpuCores, 2),
      `${fmt(r.serverEventLoopUtilization * 100, 0)}%`,
      fmt(r.machineBusyCores, 2),
      `${fmt(r.result.generatorEventLoopUtilization * 100, 0)}%`,
    ]),
    2,
  );
}

export function printProfile(p: ProfileRecord) {
  console.log(
    `\n(${p.target}) ${p.label} profile: ${fmt(p.rps, 0)} req/s while counting; ${fmt(p.roundTripsPerRequest, 2)} round trips` +
      (p.pg.batchedStatements !== undefined ? ` (+ ${fmt(p.pg.batchedStatements / p.requests, 2)} statements batched in front of them)` : '') +
      ` and ${fmt(p.transactionsPerRequest, 2)} transactions per request`,
  );
  const rows = p.pg.statements.map((s) => [s.kind, String(s.count), fmt(s.count / p.requests, 2), fmt(s.meanMs, 2), fmt(s.p50Ms, 2), fmt(s.p99Ms, 2)]);
  rows.push(['(waiting for a pooled connection)', String(p.pg.poolAcquire.count), '', fmt(p.pg.poolAcquire.meanMs, 2), '', fmt(p.pg.poolAcquire.p99Ms, 2)]);
  const { transaction: tx, auditTransaction: atx } = p.pg;
  if (tx.count) rows.push(['(BEGIN sent → COMMIT answered)', String(tx.count), '', fmt(tx.meanMs, 2), '', fmt(tx.p99Ms, 2)]);
  if (atx.count) rows.push(['(… of which transactions with audit rows)', String(atx.count), fmt(atx.count / p.requests, 2), fmt(atx.meanMs, 2), '', fmt(atx.p99Ms, 2)]);
  printTable(['statement (one round trip each)', 'count', 'per req', 'mean ms', 'p50 ms', 'p99 ms'], rows);
  const bk = Object.entries(p.pg.batchedKinds ?? {}).sort((x, y) => y[1] - x[1]);
  if (bk.length) console.log(`batched in front of those, per request: ${bk.map(([k, n]) => `${k} ${fmt(n / p.requests, 2)}`).join(', ')}`);
  const rb = p.pg.readBatches;
  if (rb?.batches) {
    console.log(`multiplexed reads: ${rb.reads} reads in ${rb.batches} batches (${fmt(rb.reads / rb.batches, 1)} reads per batch, one round trip each)`);
  }
  const lock = p.pg.chainLockHold;
  if (lock.count) {
    console.log(
      `audit chain head row lock held (≥ INSERT answered → COMMIT answered): mean ${fmt(lock.meanMs, 2)} ms, ` +
        `p99 ${fmt(lock.p99Ms, 2)} ms; held ${fmt((lock.totalMs / p.pg.wallMs) * 100, 0)}% of the time ` +
        `(ceiling ≈ ${fmt(1000 / lock.meanMs, 0)} audited transactions/s if nothing else changed)`,
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
  console.log(`  ${c.byPlace.slice(0, 12).map((x) => `${x.place} ${fmt(x.pct, 1)}%`).join(', ')}`);
  console.log('  hottest functions (self time):');
  for (const f of c.topFunctions.slice(0, 10)) console.log(`    ${fmt(f.pct, 1).padStart(5)}%  ${f.fn}`);
  if (c.inclusive?.length) {
    console.log('  inclusive (self + callees) of src/ functions and framework steps:');
    for (const f of c.inclusive.slice(0, 18)) console.log(`    ${fmt(f.pct, 1).padStart(5)}%  ${f.fn}`);
  }
}
