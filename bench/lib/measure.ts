import os from 'node:os';
import type { ActivityProfile } from './bench-db';
import { sampleActivity } from './bench-db';
import type { ChildServer } from './child';
import { busyCores, cpuSnapshot } from './cpu';
import type { CpuSummary } from './cpu-profile';
import { runLoad, type LoadResult, type RequestSpec } from './loadgen';
import type { PgProfile } from './pg-instrument';

/**
 * One measured run and one profiling run against a child server, and their printing: what
 * bench/read.ts does inline, as functions, for bench:booking (read.ts keeps its own copy).
 */

export class BenchFailure extends Error {}

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

export async function measureRun(
  target: Target,
  label: string,
  round: number,
  child: ChildServer,
  requests: RequestSpec[],
  o: MeasureOptions,
): Promise<RunRecord> {
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
    console.error(
      [
        '',
        '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
        `!! BENCH FAILED: ${result.errors.total} failed request(s) against ${label} (run ${round})`,
        `!! by kind: ${JSON.stringify(result.errors.byKind)}`,
        ...result.errors.examples.map((e) => `!!   ${e}`),
        '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
      ].join('\n'),
    );
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

export async function profileRun(
  target: Target,
  label: string,
  child: ChildServer,
  requests: RequestSpec[],
  database: string,
  profileS: number,
  o: MeasureOptions,
): Promise<ProfileRecord> {
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
    `\n(${p.target}) ${p.label} profile: ${fmt(p.rps, 0)} req/s while counting; ${fmt(p.roundTripsPerRequest, 2)} round trips per request` +
      (p.pg.batchedStatements !== undefined ? ` (+ ${fmt(p.pg.batchedStatements / p.requests, 2)} statements batched in front of them)` : ''),
  );
  const rows = p.pg.statements.map((s) => [s.kind, String(s.count), fmt(s.count / p.requests, 2), fmt(s.meanMs, 2), fmt(s.p50Ms, 2), fmt(s.p99Ms, 2)]);
  rows.push(['(waiting for a pooled connection)', String(p.pg.poolAcquire.count), '', fmt(p.pg.poolAcquire.meanMs, 2), '', fmt(p.pg.poolAcquire.p99Ms, 2)]);
  printTable(['statement (one round trip each)', 'count', 'per req', 'mean ms', 'p50 ms', 'p99 ms'], rows);
  const bk = Object.entries(p.pg.batchedKinds ?? {}).sort((x, y) => y[1] - x[1]);
  if (bk.length) console.log(`batched in front of those, per request: ${bk.map(([k, n]) => `${k} ${fmt(n / p.requests, 2)}`).join(', ')}`);
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
