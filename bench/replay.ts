/**
 * npm run bench:replay — serving a 50 MB consultation recording with range requests.
 *
 *   (a) nginx sendfile of the plaintext file (skipped, with a message, where nginx is absent);
 *   (b) plain Node streaming of the same file: node:http + fs.createReadStream, Range honoured;
 *   (c) the replay route of the real service, GET /api/recordings/:id/media with a Range header:
 *       session cookie, RLS-scoped READ ONLY transaction, an audit event durable before the first
 *       byte (group commit), egress check, AES-256-GCM segments read and opened on the fly.
 *
 * All three serve identical bytes: the recording is made through the API (a patient, a GP with
 * TOTP, a booking, a live consultation, consent, a recording uploaded in chunks and finalised by
 * the service), its plaintext fetched once through (c) and written to a file for (a) and (b)
 * (and checked against what finaliseWebm makes of the upload). Every server is a child process;
 * the load generator runs here, on the same 2-core machine.
 *
 *   0. the floor: one seek at a time on each idle server (1 MiB from a random offset), first body byte.
 *   1. throughput: C connections each fetching large random ranges back to back; bytes/s;
 *      runs a, b, c interleaved for R rounds, best of each; ratios c/a and c/b; server CPU per GB
 *      and (Node servers) the garbage collections in the window.
 *   2. a profiling run of (c) (V8 sampling + query counting in the service).
 *   3. concurrency: N streams against ONE service process, each consuming 1 Mbit/s (paced
 *      pause/resume), held; seeks (the current request abandoned, a new Range from a random
 *      offset) timed to their first body byte; stream health, the service's RSS, CPU and GCs, the
 *      kernel's TCP counters; then a few seconds more with the profiler on. Then the same streams
 *      against (b), as a control: what this machine and generator manage without the route's work.
 *      Both ends of every stream are on this machine: run as root, the bench raises the kernel's
 *      TCP memory limit (net.ipv4.tcp_mem) to about 4 MiB per stream for the run, and caps the
 *      socket buffers (tcp_rmem / tcp_wmem maximum) at 512 KiB while the streams run, and puts
 *      both back (bench/lib/replay-tcp-mem.ts); otherwise it says why it left them.
 *
 * Env: BENCH_FILE_MB (50), BENCH_CONNECTIONS (6), BENCH_RANGE_MB (8), BENCH_WARMUP_S (1),
 *      BENCH_DURATION_S (5), BENCH_ROUNDS (3), BENCH_PROFILE_S (3, 0 = skip), BENCH_IDLE_SEEKS (20),
 *      BENCH_STREAMS (2000, 0 = skip the concurrency part), BENCH_STREAM_KBIT (1000), BENCH_LEAD_S (2),
 *      BENCH_RAMP_S (15), BENCH_HOLD_S (20), BENCH_SEEKS_PER_S (25), BENCH_STREAM_PROFILE_S (4, 0 = skip),
 *      BENCH_CONTROL_HOLD_S (10, 0 = skip the control), BENCH_SESSIONS (4), BENCH_POOL_SIZE (20),
 *      BENCH_CHUNK_MB (4), BENCH_NGINX (path of the nginx binary), BENCH_SKIP_NGINX (0),
 *      BENCH_TIMEOUT_S (10: a stream with no first byte after this long has failed).
 * A failed request or a byte that differs fails the run (exit 1). Targets are reported, not enforced.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { finaliseWebm } from '../src/modules/recordings/webm';
import { SEGMENT_SIZE } from '../src/modules/recordings/sealed-segments';
import { OWNER_ROLE, preparePostgres, SERVICE_ROLE, urlFor } from './lib/bench-db';
import type { ChildServer } from './lib/child';
import { busyCores, cpuSnapshot, procCpuMs, threadSched, threadSchedDelta, type CpuSnapshot, type ThreadSched } from './lib/cpu';
import type { CpuSummary } from './lib/cpu-profile';
import { summarise, type LatencySummary } from './lib/loadgen';
import { BenchFailure, envNum, loud, runBench } from './lib/harness';
import { fmt, printTable } from './lib/measure';
import type { PgProfile } from './lib/pg-instrument';
import {
  fetchRange,
  firstByteTimes,
  procRss,
  runRangeThroughput,
  listenQueueLength,
  runReplayStreams,
  tcpCounters,
  tcpCountersDelta,
  tcpMemMiB,
  type TcpCounters,
  type StreamsResult,
  type ThroughputResult,
} from './lib/replay-load';
import { findNginx, startNginx, type NginxServer } from './lib/replay-nginx';
import { gcDelta, type GcCounters, type LoopDelay } from './lib/replay-gc';
import { createRecording, synthesiseWebm } from './lib/replay-setup';
import { capSocketBuffers, pagesToMiB, raiseTcpMem, restoreSocketBuffers, restoreTcpMem, type TcpMemChange } from './lib/replay-tcp-mem';
import type { TimelineReading } from './lib/replay-timeline';

const here = path.dirname(fileURLToPath(import.meta.url));
const HOST = '127.0.0.1';
const TARGET_OF_NGINX = 0.4;
const TARGET_OF_NODE = 0.8;
const TARGET_SEEK_P99_MS = 50;
/** Kernel TCP memory to allow per stream (its two sockets, both on this machine): 2,000 streams → about 8 GiB. */
const TCP_MEM_PER_STREAM = 4 * 1024 * 1024;
/** tcp_rmem / tcp_wmem maximum while the paced streams run: 512 KiB, about 4 s of media at 1 Mbit/s. */
const STREAM_SOCKET_BUFFER_MAX = 512 * 1024;

const opts = {
  fileMB: envNum('BENCH_FILE_MB', 50, 1, 1000),
  connections: envNum('BENCH_CONNECTIONS', 6, 1, 64),
  rangeMB: envNum('BENCH_RANGE_MB', 8, 0.0625, 1000),
  warmupS: envNum('BENCH_WARMUP_S', 1, 0, 60),
  durationS: envNum('BENCH_DURATION_S', 5, 1, 120),
  rounds: envNum('BENCH_ROUNDS', 3, 1, 10),
  profileS: envNum('BENCH_PROFILE_S', 3, 0, 60),
  streams: envNum('BENCH_STREAMS', 2000, 0, 20_000),
  streamKbit: envNum('BENCH_STREAM_KBIT', 1000, 8, 100_000),
  leadS: envNum('BENCH_LEAD_S', 2, 0, 60),
  rampS: envNum('BENCH_RAMP_S', 15, 1, 120),
  holdS: envNum('BENCH_HOLD_S', 20, 1, 600),
  seeksPerS: envNum('BENCH_SEEKS_PER_S', 25, 0, 1000),
  streamProfileS: envNum('BENCH_STREAM_PROFILE_S', 4, 0, 60),
  controlHoldS: envNum('BENCH_CONTROL_HOLD_S', 10, 0, 600),
  idleSeeks: envNum('BENCH_IDLE_SEEKS', 20, 0, 1000),
  sessions: envNum('BENCH_SESSIONS', 4, 1, 100),
  poolSize: envNum('BENCH_POOL_SIZE', 20, 1, 200),
  chunkMB: envNum('BENCH_CHUNK_MB', 4, 0.0625, 64),
  skipNginx: envNum('BENCH_SKIP_NGINX', 0, 0, 1) === 1,
  timeoutS: envNum('BENCH_TIMEOUT_S', 10, 1, 120),
};

const budgetMs =
  90_000 +
  opts.fileMB * 400 +
  3 * opts.rounds * (opts.warmupS + opts.durationS + 4) * 1000 +
  (opts.profileS ? (opts.profileS + 10) * 1000 : 0) +
  (opts.streams ? (opts.rampS + opts.holdS + opts.streamProfileS + 30) * 1000 : 0) +
  (opts.streams && opts.controlHoldS ? (opts.rampS + opts.controlHoldS + 30) * 1000 : 0);

type Target = 'a' | 'b' | 'c';
const LABEL: Record<Target, string> = { a: 'nginx sendfile', b: 'plain Node stream', c: 'replay route' };

interface Server {
  target: Target;
  /** The Node children (b, c) answer gc / memory / profiling commands; nginx does not. */
  child: ChildServer | null;
  pid: number;
  port: number;
  path: string;
  headerLines: string[];
  fileSize: number;
}

interface ThroughputRun {
  target: Target;
  round: number;
  result: ThroughputResult;
  /** CPU of the server process (all threads) per wall second, over the measured window. */
  serverCores: number;
  /** Server CPU seconds per GB served: what a byte costs, whatever the machine's noise. */
  serverCpuSPerGB: number;
  machineBusyCores: number;
  /** Collections in the server during the window (Node targets). */
  gc: GcCounters | null;
}

function log(msg: string) {
  console.log(`[bench:replay] ${msg}`);
}

const gbps = (bytesPerS: number) => bytesPerS / 1e9;
const ms = (l: LatencySummary) => `p50 ${fmt(l.p50, 1)} / p90 ${fmt(l.p90, 1)} / p99 ${fmt(l.p99, 1)} / max ${fmt(l.max, 1)} ms`;

/** The kernel's TCP memory limits (pages → MiB) and buffer autotuning ranges: both ends of every stream live on this machine. */
function tcpSettings(): { tcpMemMiB: number[]; rmem: string; wmem: string; somaxconn: string } | null {
  try {
    const r = (f: string) => readFileSync(`/proc/sys/net/${f}`, 'utf8').trim().replace(/\s+/g, ' ');
    return { tcpMemMiB: r('ipv4/tcp_mem').split(' ').map((p) => Math.round((Number(p) * 4096) / 1048576)), rmem: r('ipv4/tcp_rmem'), wmem: r('ipv4/tcp_wmem'), somaxconn: r('core/somaxconn') };
  } catch {
    return null;
  }
}

function openFiles(): { soft: number; hard: number } {
  const q = (flag: string) => {
    try {
      const v = execFileSync('sh', ['-c', `ulimit ${flag}`], { encoding: 'utf8' }).trim();
      return v === 'unlimited' ? Infinity : Number(v);
    } catch {
      return NaN;
    }
  };
  return { soft: q('-Sn'), hard: q('-Hn') };
}

async function verifyBytes(s: Server, plaintext: Buffer) {
  const size = plaintext.length;
  // The head, a range across a segment boundary (unaligned both ends), the last bytes.
  const checks: [number, number][] = [
    [0, 1023],
    [3 * SEGMENT_SIZE - 777, 7 * SEGMENT_SIZE + 1234],
    [Math.floor(size / 2) + 13, Math.min(size - 1, Math.floor(size / 2) + 2 * 1024 * 1024)],
    [size - 5000, size - 1],
  ];
  const headers = Object.fromEntries(s.headerLines.slice(0, 1).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]));
  for (const [first, last] of checks) {
    const r = await fetchRange(HOST, s.port, s.path, first, last, headers);
    if (r.status !== 206) throw new BenchFailure(`${LABEL[s.target]}: range ${first}-${last} answered HTTP ${r.status} ${r.body.toString('utf8', 0, 200)}`);
    if (!r.body.equals(plaintext.subarray(first, last + 1))) throw new BenchFailure(`${LABEL[s.target]}: range ${first}-${last} differs from the plaintext`);
  }
}

async function throughputRun(s: Server, round: number, fileSize: number): Promise<ThroughputRun> {
  let cpuA = NaN;
  let cpuB = NaN;
  let m0: CpuSnapshot | null = null;
  let m1: CpuSnapshot | null = null;
  let gc0: Promise<GcCounters> | null = null;
  let gc1: Promise<GcCounters> | null = null;
  const result = await runRangeThroughput({
    host: HOST,
    port: s.port,
    path: s.path,
    connections: opts.connections,
    warmupS: opts.warmupS,
    durationS: opts.durationS,
    fileSize,
    rangeBytes: Math.round(opts.rangeMB * 1024 * 1024),
    seed: 1000 + round,
    headerLines: s.headerLines,
    timeoutMs: opts.timeoutS * 1000,
    onWindowStart: () => {
      cpuA = procCpuMs(s.pid);
      m0 = cpuSnapshot();
      gc0 = s.child ? s.child.call<GcCounters>('gc') : null;
    },
    onWindowEnd: () => {
      cpuB = procCpuMs(s.pid);
      m1 = cpuSnapshot();
      gc1 = s.child ? s.child.call<GcCounters>('gc') : null;
    },
  });
  if (result.errors.total > 0) {
    loud([`BENCH FAILED: ${result.errors.total} failed request(s) against ${LABEL[s.target]} (round ${round})`, ...result.errors.examples.map((e) => `  ${e}`)]);
    throw new BenchFailure(`${result.errors.total} failed request(s)`);
  }
  const gc = gc0 && gc1 ? gcDelta(await gc0, await gc1) : null;
  const serverCores = (cpuB - cpuA) / (opts.durationS * 1000);
  const run: ThroughputRun = {
    target: s.target,
    round,
    result,
    serverCores,
    serverCpuSPerGB: (cpuB - cpuA) / 1000 / (result.bytes / 1e9),
    machineBusyCores: busyCores(m0, m1, os.cpus().length),
    gc,
  };
  log(
    `  ${round}/${s.target} ${LABEL[s.target].padEnd(17)} ${fmt(gbps(result.bytesPerS), 3)} GB/s, ${result.requests} ranges, headers ${fmt(result.headersMs.p50, 1)} ms p50; ` +
      `server ${fmt(serverCores, 2)} cores (${fmt(run.serverCpuSPerGB, 2)} CPU s/GB)${gc ? `, ${gc.major} mark-compacts + ${gc.minor} scavenges` : ''}; ` +
      `generator ${fmt(result.generatorCpuCores, 2)} cores, machine ${fmt(run.machineBusyCores, 2)}/${os.cpus().length}`,
  );
  return run;
}

interface ConcurrencyRecord extends StreamsResult {
  target: Target;
  server: {
    cpuCores: number;
    machineBusyCores: number;
    rssMiB: { max: number; last: number; peakVmHWM: number };
    heapUsedMiB: number | null;
    arrayBuffersMiB: number | null;
    kernelTcpMiBMax: number;
    gc: GcCounters | null;
    /** The server's event-loop delay during the hold (ms). */
    loopDelayMs: LoopDelay | null;
    /** Where the server's requests' time went during the hold, stage by stage (ms). */
    timeline: TimelineReading | null;
    /** The server's threads during the hold: CPU, and time waiting for a CPU (ms per second). */
    threads: ReturnType<typeof threadSchedDelta> | null;
    /** The same for the generator (this process). */
    generatorThreads: ReturnType<typeof threadSchedDelta> | null;
  };
  /** Machine-wide kernel TCP counters over the whole run (ramp to teardown). */
  kernel: TcpCounters | null;
}

/** N paced streams against one server; the 'hold' phase is measured, then an optional profiled phase. */
async function concurrencyRun(s: Server, holdS: number, profileS: number): Promise<{ rec: ConcurrencyRecord; profile: { pg: PgProfile; cpu: CpuSummary } | null }> {
  log(
    `concurrency against ${s.target} ${LABEL[s.target]} (pid ${s.pid}): ${opts.streams} streams at ${opts.streamKbit} kbit/s, ramp ${opts.rampS}s, hold ${holdS}s, ${opts.seeksPerS} seeks/s` +
      (profileS ? `, then ${profileS}s with the profiler on` : ''),
  );
  const rss: number[] = [];
  const tcp: number[] = [];
  let cpu0 = NaN;
  let cpu1 = NaN;
  let m0: CpuSnapshot | null = null;
  let m1: CpuSnapshot | null = null;
  let t0 = 0;
  let t1 = 0;
  let gc0: GcCounters | null = null;
  let gc1: GcCounters | null = null;
  let loop: LoopDelay | null = null;
  let timeline: TimelineReading | null = null;
  let sched0 = new Map<number, ThreadSched>();
  let genSched0 = new Map<number, ThreadSched>();
  let threads: ReturnType<typeof threadSchedDelta> | null = null;
  let generatorThreads: ReturnType<typeof threadSchedDelta> | null = null;
  let memory: NodeJS.MemoryUsage | null = null;
  let second = 0;
  const k0 = tcpCounters();
  const endHold = async () => {
    cpu1 = procCpuMs(s.pid);
    m1 = cpuSnapshot();
    t1 = Date.now();
    threads = threadSchedDelta(s.pid, sched0, threadSched(s.pid), t1 - t0);
    generatorThreads = threadSchedDelta(process.pid, genSched0, threadSched(process.pid), t1 - t0);
    if (s.child) {
      gc1 = await s.child.call<GcCounters>('gc');
      loop = await s.child.call<LoopDelay>('loop-delay');
      timeline = await s.child.call<TimelineReading>('timeline');
      memory = await s.child.call<NodeJS.MemoryUsage>('memory');
    }
  };
  const r = await runReplayStreams({
    host: HOST,
    port: s.port,
    path: s.path,
    cookies: s.headerLines.map((l) => l.replace(/^cookie: /, '')),
    streams: opts.streams,
    rampS: opts.rampS,
    rateBytesPerS: (opts.streamKbit * 1000) / 8,
    leadS: opts.leadS,
    fileSize: s.fileSize,
    seed: 4242,
    timeoutMs: opts.timeoutS * 1000,
    listenQueue: () => listenQueueLength(s.port),
    // The hold's figures are taken before the teardown (when there is no profiled phase to start).
    afterPhases: async () => {
      if (!t1) await endHold();
    },
    log,
    everySecond: () => {
      const m = procRss(s.pid);
      rss.push(m.rssMiB);
      tcp.push(tcpMemMiB());
      if (++second % 5 === 0) log(`  … ${second}s: ${s.target} RSS ${fmt(m.rssMiB, 0)} MiB, kernel TCP buffers ${fmt(tcp[tcp.length - 1]!, 0)} MiB`);
    },
    phases: [
      {
        name: 'hold',
        seconds: holdS,
        seeksPerS: opts.seeksPerS,
        onStart: async () => {
          cpu0 = procCpuMs(s.pid);
          m0 = cpuSnapshot();
          t0 = Date.now();
          sched0 = threadSched(s.pid);
          genSched0 = threadSched(process.pid);
          if (s.child) {
            gc0 = await s.child.call<GcCounters>('gc');
            await s.child.call('loop-delay-reset');
            await s.child.call('timeline-reset');
          }
        },
      },
      ...(profileS > 0 && s.child
        ? [
            {
              name: 'profiled',
              seconds: profileS,
              seeksPerS: opts.seeksPerS,
              onStart: async () => {
                await endHold();
                await s.child!.call('profile-start');
              },
            },
          ]
        : []),
    ],
  });
  if (!t1) await endHold();
  const kernel = tcpCountersDelta(k0, tcpCounters());
  const profile = profileS > 0 && s.child ? await s.child.call<{ pg: PgProfile; cpu: CpuSummary }>('profile-stop') : null;
  const mem = memory as NodeJS.MemoryUsage | null;
  const rec: ConcurrencyRecord = {
    ...r,
    target: s.target,
    server: {
      cpuCores: (cpu1 - cpu0) / (t1 - t0),
      machineBusyCores: busyCores(m0, m1, os.cpus().length),
      rssMiB: { max: Math.max(...rss), last: rss[rss.length - 1] ?? NaN, peakVmHWM: procRss(s.pid).peakMiB },
      heapUsedMiB: mem ? mem.heapUsed / 1048576 : null,
      arrayBuffersMiB: mem ? mem.arrayBuffers / 1048576 : null,
      kernelTcpMiBMax: Math.max(...tcp),
      gc: gc0 && gc1 ? gcDelta(gc0, gc1) : null,
      loopDelayMs: loop,
      timeline,
      threads,
      generatorThreads,
    },
    kernel,
  };
  // Let the server finish with the abandoned streams (the route audits each as cut short).
  await new Promise((res) => setTimeout(res, 3000));
  return { rec, profile };
}

function printConcurrency(c: ConcurrencyRecord, withTarget: boolean) {
  const hold = c.phases.find((p) => p.name === 'hold')!;
  const srv = c.server;
  console.log(`
concurrency, ${c.target} ${LABEL[c.target]}: ${c.streams} streams × ${opts.streamKbit} kbit/s, one process`);
  console.log(`  opened: ${c.opened}/${c.streams}; first byte of an opening request (during the ramp): ${ms(c.openFirstByteMs)}`);
  const queue = Object.entries(c.listenQueueMax)
    .map(([phase, n]) => `${phase} ${n}`)
    .join(', ');
  console.log(`  every stream receiving ${fmt(c.settleS, 1)} s after the ramp; most connections waiting for the server to accept them: ${queue || 'not measured'}`);
  for (const p of c.phases) {
    console.log(
      `  ${p.name.padEnd(8)} ${fmt(p.seconds, 1)}s: ${p.seeks} seeks, first body byte ${ms(p.seekFirstByteMs)}; ` +
        `delivered ${fmt(p.bytesPerS / 1e6, 1)} MB/s to ${p.openStreams} open streams (${fmt((p.bytesPerS * 8) / 1e6 / Math.max(1, p.openStreams), 2)} Mbit/s each); ` +
        `generator's event-loop delay p99 ${fmt(p.generatorLoopDelayMs.p99, 1)} / max ${fmt(p.generatorLoopDelayMs.max, 1)} ms`,
    );
  }
  console.log(
    `  healthy streams: ${c.healthy}/${c.streams} (no failure, never ran dry); ran dry: ${c.ranDry}` +
      (c.ranDry ? ` (worst shortfall per stream ${ms(c.worstDryMs)})` : '') +
      `; failed: ${c.failed}${c.failed ? ` ${JSON.stringify(c.failures)}` : ''}`,
  );
  for (const e of c.failureExamples.slice(0, 3)) console.log(`    e.g. ${e}`);
  console.log(
    `  server during the hold: ${fmt(srv.cpuCores, 2)} cores, RSS max ${fmt(srv.rssMiB.max, 0)} MiB (peak ${fmt(srv.rssMiB.peakVmHWM, 0)} MiB)` +
      (srv.arrayBuffersMiB !== null ? `, of which Buffers ${fmt(srv.arrayBuffersMiB, 0)} MiB, JS heap ${fmt(srv.heapUsedMiB ?? NaN, 0)} MiB` : '') +
      (srv.gc ? `; ${srv.gc.major} mark-compacts (${fmt(srv.gc.majorMs, 0)} ms paused), ${srv.gc.minor} scavenges` : '') +
      (srv.loopDelayMs ? `; event-loop delay p50 ${fmt(srv.loopDelayMs.p50, 1)} / p99 ${fmt(srv.loopDelayMs.p99, 1)} / max ${fmt(srv.loopDelayMs.max, 1)} ms` : '') +
      `; machine ${fmt(srv.machineBusyCores, 2)}/${os.cpus().length} cores; kernel TCP buffers max ${fmt(srv.kernelTcpMiBMax, 0)} MiB; generator ${fmt(c.generatorCpuCores, 2)} cores`,
  );
  if (srv.threads && srv.generatorThreads) {
    const t = srv.threads;
    const g = srv.generatorThreads;
    console.log(
      `  threads during the hold, ms per second on a CPU / ready but waiting for one: server main ${fmt(t.main.runMsPerS, 0)} / ${fmt(t.main.waitMsPerS, 1)}, ` +
        `its ${t.others.threads} other threads ${fmt(t.others.runMsPerS, 0)} / ${fmt(t.others.waitMsPerS, 1)}; generator main ${fmt(g.main.runMsPerS, 0)} / ${fmt(g.main.waitMsPerS, 1)}`,
    );
  }
  if (srv.timeline) {
    console.log('  inside the server during the hold, each stage on its own:');
    for (const [stage, t] of Object.entries(srv.timeline.stages)) {
      console.log(`    ${stage.padEnd(36)} ${String(t.count).padStart(6)} × ${ms(t)}`);
    }
    const p = srv.timeline.parts;
    if (p) {
      console.log(`  the seeks' time in the server, step by step (${p.all.total!.count} seeks); the slowest 5 % (${p.slowest.count}, ${fmt(p.slowest.totalMs, 1)} ms on average) spent:`);
      for (const step of [...p.steps, 'total']) {
        const slow = step === 'total' ? p.slowest.totalMs : p.slowest.stepsMs[step]!;
        console.log(`    ${step.padEnd(36)} ${ms(p.all[step]!)}; slowest 5 %: ${fmt(slow, 1)} ms`);
      }
    }
  }
  if (c.kernel) {
    const k = c.kernel;
    console.log(
      `  kernel (whole machine, during the run): ${k.ListenOverflows} listen-queue overflows, ${k.TCPSynRetrans} SYN retransmits, ${k.TCPTimeouts} retransmission timeouts, ` +
        `${k.TCPRcvQDrop} packets dropped for lack of TCP memory, ${fmt(k.TCPMemoryPressuresChrono / 1000, 1)} s under TCP memory pressure` +
        (k.ListenOverflows || k.TCPRcvQDrop || k.TCPMemoryPressuresChrono ? ' — the kernel, not only the server, delayed connections' : ''),
    );
  }
  if (withTarget) {
    const met = c.healthy === c.streams && hold.seekFirstByteMs.p99 < TARGET_SEEK_P99_MS;
    console.log(`  target: all ${c.streams} streams healthy and seek p99 < ${TARGET_SEEK_P99_MS} ms: ${met ? 'met' : 'NOT MET'} (p99 ${fmt(hold.seekFirstByteMs.p99, 1)} ms, ${c.healthy} healthy)`);
  }
}

interface RouteProfile {
  bytesPerS: number;
  requests: number;
  serverCores: number;
  pg: PgProfile;
  cpu: CpuSummary;
}

function printCpu(cpu: CpuSummary) {
  console.log(`  main thread, share of busy self time by place (${fmt(cpu.sampledMs / 1000, 1)} s sampled):`);
  console.log(`    ${cpu.byPlace.slice(0, 10).map((x) => `${x.place} ${fmt(x.pct, 1)}%`).join(', ')}`);
  console.log('  hottest functions (self time):');
  for (const f of cpu.topFunctions.slice(0, 10)) console.log(`    ${fmt(f.pct, 1).padStart(5)}%  ${f.fn}`);
  if (cpu.inclusive?.length) {
    console.log('  inclusive (self + callees) of src/ functions and framework steps:');
    for (const f of cpu.inclusive.slice(0, 14)) console.log(`    ${fmt(f.pct, 1).padStart(5)}%  ${f.fn}`);
  }
}

function printPg(pgp: PgProfile, requests: number) {
  const rows = pgp.statements.map((s) => [s.kind, String(s.count), fmt(s.count / requests, 2), fmt(s.meanMs, 2), fmt(s.p99Ms, 2)]);
  rows.push(['(waiting for a pooled connection)', String(pgp.poolAcquire.count), fmt(pgp.poolAcquire.count / requests, 2), fmt(pgp.poolAcquire.meanMs, 2), fmt(pgp.poolAcquire.p99Ms, 2)]);
  if (pgp.transaction.count) {
    rows.push(['(BEGIN sent → COMMIT answered)', String(pgp.transaction.count), fmt(pgp.transaction.count / requests, 2), fmt(pgp.transaction.meanMs, 2), fmt(pgp.transaction.p99Ms, 2)]);
  }
  if (pgp.auditTransaction.count) {
    rows.push(['(… transactions with audit rows)', String(pgp.auditTransaction.count), fmt(pgp.auditTransaction.count / requests, 2), fmt(pgp.auditTransaction.meanMs, 2), fmt(pgp.auditTransaction.p99Ms, 2)]);
  }
  printTable(['  statement (one round trip each)', 'count', 'per req', 'mean ms', 'p99 ms'], rows.map((r) => [`  ${r[0]}`, ...r.slice(1)]));
  if (pgp.audit.inserts) {
    console.log(
      `  audit: ${pgp.audit.rows} rows in ${pgp.audit.inserts} INSERTs (${fmt(pgp.audit.rows / pgp.audit.inserts, 1)} rows per INSERT: each INSERT is a group commit that the requests in it wait for, fsync included)`,
    );
  }
}

runBench('replay', { budgetMs }, async (bench) => {
  const files = openFiles();
  const nginxBin = opts.skipNginx ? { bin: null, why: 'BENCH_SKIP_NGINX=1' } : findNginx();
  await bench.defer('putting back net.ipv4.tcp_mem', restoreTcpMem);
  const pg = await preparePostgres(log);
  log(
    `${opts.fileMB} MB recording; throughput: ${opts.connections} connections × ${opts.rangeMB} MiB random ranges, ${opts.warmupS}s warm-up + ${opts.durationS}s × ${opts.rounds} rounds (a, b, c); ` +
      `concurrency: ${opts.streams} streams × ${opts.streamKbit} kbit/s from ${opts.sessions} sessions, ramp ${opts.rampS}s, hold ${opts.holdS}s, ${opts.seeksPerS} seeks/s, lead ${opts.leadS}s`,
  );
  log(
    `${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}, Node ${process.version}, ` +
      `open files ${files.soft}/${files.hard}; PostgreSQL ${pg.version} (${Object.entries(pg.settings).map(([k, v]) => `${k}=${v}`).join(', ')}); ` +
      `nginx: ${nginxBin.bin ? `${nginxBin.version} (${nginxBin.bin})` : `SKIPPED: ${nginxBin.why}`}`,
  );
  const tcp = tcpSettings();
  log(
    'the load generator runs in this process, on the same machine as the servers: its CPU is reported with every run' +
      (tcp ? `; kernel TCP memory pressure/limit ${tcp.tcpMemMiB[1]}/${tcp.tcpMemMiB[2]} MiB (tcp_mem), tcp_rmem ${tcp.rmem}, tcp_wmem ${tcp.wmem}, somaxconn ${tcp.somaxconn}` : ''),
  );
  let tcpMemChange: TcpMemChange | null = null;
  if (opts.streams > 0) {
    tcpMemChange = raiseTcpMem(opts.streams * TCP_MEM_PER_STREAM);
    log(
      tcpMemChange.raised
        ? `raised the kernel's TCP memory for this run (net.ipv4.tcp_mem, pages): ${tcpMemChange.fromPages.join(' ')} → ${tcpMemChange.toPages.join(' ')} ` +
            `(pressure/limit ${pagesToMiB(tcpMemChange.fromPages[1]!)}/${pagesToMiB(tcpMemChange.fromPages[2]!)} → ${pagesToMiB(tcpMemChange.toPages[1]!)}/${pagesToMiB(tcpMemChange.toPages[2]!)} MiB); ` +
            `put back when the bench ends (by hand, should it be killed: sysctl -w net.ipv4.tcp_mem="${tcpMemChange.fromPages.join(' ')}")`
        : `kernel TCP memory (net.ipv4.tcp_mem) left as it is: ${tcpMemChange.why}`,
    );
  }
  // The service holds a socket and an open blob per stream; this process a socket per stream.
  const fdsNeeded = opts.streams * 2 + 500;
  if (opts.streams > 0 && files.soft < fdsNeeded) {
    throw new BenchFailure(
      `open-file limit ${files.soft} is too low for ${opts.streams} streams (the service needs about ${fdsNeeded}: a socket and an open recording per stream); ` +
        `raise it (ulimit -n ${Math.min(files.hard, 65536)}) or set BENCH_STREAMS lower`,
    );
  }

  const db = await bench.createDatabase('replay');
  const tmpDir = mkdtempSync(path.join(os.tmpdir(), 'confidant-bench-replay-'));
  await bench.defer(`removing ${tmpDir}`, () => rmSync(tmpDir, { recursive: true, force: true }));
  const dataDir = path.join(tmpDir, 'data');
  mkdirSync(dataDir);

  const service = await bench.startChild('service', path.join(here, 'lib/replay-service.ts'), [urlFor(SERVICE_ROLE, db), urlFor(OWNER_ROLE, db), String(opts.poolSize), dataDir]);
  log(`service on :${service.port} (pid ${service.pid}), PostgreSQL database ${db}, DATA_DIR ${dataDir}`);

  // The recording, through the API; its plaintext must be exactly what finaliseWebm makes of the upload.
  const webm = synthesiseWebm(opts.fileMB * 1024 * 1024);
  const expected = finaliseWebm(webm.data).data;
  const fx = await createRecording(service, HOST, { webm: webm.data, chunkBytes: Math.round(opts.chunkMB * 1024 * 1024), sessions: opts.sessions });
  if (!fx.plaintext.equals(expected)) throw new BenchFailure('the plaintext served by the replay route differs from finaliseWebm of the uploaded bytes');
  const size = fx.plaintext.length;
  log(
    `recording ${fx.recordingId}: ${fmt(fx.uploadedBytes / 1e6, 1)} MB uploaded in ${Math.ceil(fx.uploadedBytes / (opts.chunkMB * 1024 * 1024))} chunks, ` +
      `${fmt(size / 1e6, 1)} MB plaintext (${Math.ceil(size / SEGMENT_SIZE)} sealed segments of ${SEGMENT_SIZE / 1024} KiB), ${fmt(fx.durationS / 60, 1)} min; ` +
      `setup ${Object.entries(fx.timings).map(([k, v]) => `${k} ${v.toFixed(1)}s`).join(', ')}`,
  );
  const www = path.join(tmpDir, 'www');
  mkdirSync(www);
  const file = path.join(www, 'recording.webm');
  writeFileSync(file, fx.plaintext);

  const plain = await bench.startChild('plain', path.join(here, 'lib/replay-plain-server.ts'), [file]);
  let nginx: NginxServer | null = null;
  if (nginxBin.bin) {
    const n = (nginx = await startNginx(nginxBin.bin, path.join(tmpDir, 'nginx'), file));
    await bench.defer('stopping nginx', () => n.stop());
  }
  // The same request header bytes everywhere: the baselines get the cookie too (and ignore it).
  const cookieLines = fx.cookies.map((c) => `cookie: ${c}`);
  const servers: Server[] = [
    ...(nginx ? [{ target: 'a' as const, child: null, pid: nginx.pid, port: nginx.port, path: '/recording.webm', headerLines: cookieLines, fileSize: size }] : []),
    { target: 'b', child: plain, pid: plain.pid, port: plain.port, path: '/recording.webm', headerLines: cookieLines, fileSize: size },
    { target: 'c', child: service, pid: service.pid, port: service.port, path: `/api/recordings/${fx.recordingId}/media`, headerLines: cookieLines, fileSize: size },
  ];
  const server = (t: Target) => servers.find((x) => x.target === t);
  for (const s of servers) await verifyBytes(s, fx.plaintext);
  log(`${servers.map((s) => `${s.target} ${LABEL[s.target]} :${s.port} (pid ${s.pid})`).join(', ')}; all serve the same bytes (4 ranges checked each)`);

  // 0. The floor: one seek at a time on an otherwise idle server (1 MiB from a random offset, read in full).
  const idle: Partial<Record<Target, LatencySummary>> = {};
  if (opts.idleSeeks > 0) {
    for (const s of servers) {
      const headers = { cookie: fx.cookies[0]! };
      idle[s.target] = summarise(await firstByteTimes(HOST, s.port, s.path, headers, opts.idleSeeks, size, 77));
    }
    log(`one seek at a time, idle servers, first body byte: ${servers.map((s) => `${s.target} p50 ${fmt(idle[s.target]!.p50, 1)} / max ${fmt(idle[s.target]!.max, 1)} ms`).join('; ')}`);
  }

  // 1. Throughput.
  log(`throughput: ${opts.rounds} rounds of ${servers.map((s) => s.target).join(', ')}`);
  const runs: ThroughputRun[] = [];
  for (let round = 1; round <= opts.rounds; round++) for (const s of servers) runs.push(await throughputRun(s, round, size));
  const best = (t: Target) => runs.filter((r) => r.target === t).sort((x, y) => y.result.bytesPerS - x.result.bytesPerS)[0];
  const bestA = best('a');
  const bestB = best('b')!;
  const bestC = best('c')!;

  // 2. Profile of the route under the same load.
  let profile: RouteProfile | null = null;
  if (opts.profileS > 0) {
    log(`profiling (c) for ${opts.profileS}s: V8 sampling profiler and query counting in the service`);
    await service.call('profile-start');
    const cpu0 = procCpuMs(service.pid);
    const t0 = Date.now();
    const r = await runRangeThroughput({
      host: HOST,
      port: service.port,
      path: server('c')!.path,
      connections: opts.connections,
      warmupS: 0,
      durationS: opts.profileS,
      fileSize: size,
      rangeBytes: Math.round(opts.rangeMB * 1024 * 1024),
      seed: 999,
      headerLines: cookieLines,
      timeoutMs: opts.timeoutS * 1000,
    });
    const cores = (procCpuMs(service.pid) - cpu0) / (Date.now() - t0);
    const p = await service.call<{ pg: PgProfile; cpu: CpuSummary }>('profile-stop');
    if (r.errors.total) throw new BenchFailure(`${r.errors.total} failed request(s) while profiling: ${r.errors.examples.join('; ')}`);
    profile = { bytesPerS: r.bytesPerS, requests: r.requests, serverCores: cores, ...p };
  }

  // 3. Concurrency: paced streams and seeks against one process: the route, then (control) plain Node.
  let streams: ConcurrencyRecord | null = null;
  let control: ConcurrencyRecord | null = null;
  let streamProfile: { pg: PgProfile; cpu: CpuSummary } | null = null;
  if (opts.streams > 0) {
    await new Promise((r) => setTimeout(r, 1000)); // let the service settle after the throughput runs
    const cap = capSocketBuffers(STREAM_SOCKET_BUFFER_MAX);
    log(
      cap.capped
        ? `socket buffers capped for the streams (a paused player's socket would otherwise take megabytes at full speed; see bench/lib/replay-tcp-mem.ts): ` +
            `tcp_rmem ${cap.from[0]} → ${cap.to[0]}, tcp_wmem ${cap.from[1]} → ${cap.to[1]}; put back afterwards`
        : `socket buffers left as they are (${cap.why}): paused streams will take up to tcp_rmem's maximum each`,
    );
    try {
      ({ rec: streams, profile: streamProfile } = await concurrencyRun(server('c')!, opts.holdS, opts.streamProfileS));
      if (opts.controlHoldS > 0) ({ rec: control } = await concurrencyRun(server('b')!, opts.controlHoldS, 0));
    } finally {
      restoreSocketBuffers();
    }
  }

  // Report.
  console.log('');
  printTable(
    ['round', 'target', 'GB/s', 'ranges', 'headers p50 ms', 'headers p99 ms', 'server cores', 'CPU s/GB', 'mark-compacts', 'scavenges', 'gen cores', 'machine cores'],
    runs.map((r) => [
      String(r.round),
      `${r.target} ${LABEL[r.target]}`,
      fmt(gbps(r.result.bytesPerS), 3),
      String(r.result.requests),
      fmt(r.result.headersMs.p50, 1),
      fmt(r.result.headersMs.p99, 1),
      fmt(r.serverCores, 2),
      fmt(r.serverCpuSPerGB, 2),
      r.gc ? String(r.gc.major) : '-',
      r.gc ? String(r.gc.minor) : '-',
      fmt(r.result.generatorCpuCores, 2),
      fmt(r.machineBusyCores, 2),
    ]),
    2,
  );
  console.log('');
  for (const b of [bestA, bestB, bestC]) {
    if (b) console.log(`best (${b.target}) ${LABEL[b.target].padEnd(17)} ${fmt(gbps(b.result.bytesPerS), 3)} GB/s  (round ${b.round}; server ${fmt(b.serverCores, 2)} cores, ${fmt(b.serverCpuSPerGB, 2)} CPU s/GB)`);
  }
  if (!bestA) console.log(`(a) nginx: skipped (${nginxBin.bin ? 'not started' : nginxBin.why})`);
  const ratioCA = bestA ? bestC.result.bytesPerS / bestA.result.bytesPerS : null;
  const ratioCB = bestC.result.bytesPerS / bestB.result.bytesPerS;
  const ratioBA = bestA ? bestB.result.bytesPerS / bestA.result.bytesPerS : null;
  const throughputMet = ratioCA !== null ? ratioCA >= TARGET_OF_NGINX : ratioCB >= TARGET_OF_NODE;
  console.log(
    `ratio c/a (route / nginx): ${ratioCA === null ? '-' : ratioCA.toFixed(2)}${ratioCA !== null ? ` (target ≥ ${TARGET_OF_NGINX.toFixed(2)}: ${ratioCA >= TARGET_OF_NGINX ? 'met' : 'NOT MET'})` : ''}; ` +
      `c/b (route / plain Node): ${ratioCB.toFixed(2)}${ratioCA === null ? ` (target without nginx ≥ ${TARGET_OF_NODE.toFixed(2)}: ${ratioCB >= TARGET_OF_NODE ? 'met' : 'NOT MET'})` : ''}; ` +
      `b/a: ${ratioBA === null ? '-' : ratioBA.toFixed(2)}`,
  );
  const median = (t: Target) => {
    const v = runs.filter((r) => r.target === t).map((r) => r.serverCpuSPerGB).sort((x, y) => x - y);
    return v.length ? v[Math.floor((v.length - 1) / 2)]! : NaN;
  };
  console.log(
    `CPU per GB served (server process, median of the runs): ${servers.map((s) => `${s.target} ${fmt(median(s.target), 2)} s`).join(', ')}` +
      ` — c costs ${fmt(median('c') / median('b'), 1)}× b${bestA ? ` and ${fmt(median('c') / median('a'), 1)}× a` : ''} (less sensitive to the machine's other load than GB/s)`,
  );
  if (opts.idleSeeks > 0) console.log(`one seek at a time on an idle server, first body byte: ${servers.map((s) => `${s.target} ${ms(idle[s.target]!)}`).join('; ')}`);

  if (profile) {
    console.log(
      `\n(c) replay route profile: ${fmt(gbps(profile.bytesPerS), 3)} GB/s with the profiler on, ${profile.requests} ranges of ${opts.rangeMB} MiB; server ${fmt(profile.serverCores, 2)} cores`,
    );
    printPg(profile.pg, Math.max(1, profile.requests));
    printCpu(profile.cpu);
  }

  let concurrencyMet: boolean | null = null;
  if (streams) {
    const hold = streams.phases.find((p) => p.name === 'hold')!;
    concurrencyMet = streams.healthy === streams.streams && hold.seekFirstByteMs.p99 < TARGET_SEEK_P99_MS;
    printConcurrency(streams, true);
    if (control) printConcurrency(control, false);
    if (streamProfile) {
      const prof = streams.phases.find((p) => p.name === 'profiled');
      console.log(`\n(c) profile while holding the streams (${opts.streamProfileS}s, ${prof?.seeks ?? 0} seeks, profiler on; per-request figures are per seek):`);
      printPg(streamProfile.pg, Math.max(1, prof?.seeks ?? 1));
      printCpu(streamProfile.cpu);
    }
  }

  bench.writeResults({
    options: opts,
    machine: {
      postgres: pg.version,
      postgresSettings: pg.settings,
      nginx: nginxBin.bin ? nginxBin.version : null,
      openFiles: files,
      tcp: tcpSettings(),
      tcpMemChange,
    },
    recording: { plaintextBytes: size, uploadedBytes: fx.uploadedBytes, durationS: fx.durationS, segmentBytes: SEGMENT_SIZE, sha256: fx.plaintextSha256, setupS: fx.timings },
    targets: {
      a: nginx ? 'nginx sendfile of the plaintext file (own instance, master_process off, sendfile on, access_log off)' : `skipped: ${nginxBin.bin ? 'not started' : nginxBin.why}`,
      b: 'node:http + fs.createReadStream(file, {start, end}) piped to the response (default 64 KiB buffers), Range honoured',
      c: 'createService: GET /api/recordings/:id/media with Range and a patient session cookie (session, READ ONLY scoped transaction, RLS, audit group commit before the first byte, egress check, AES-256-GCM segments decrypted)',
    },
    throughput: {
      runs: runs.map((r) => ({
        target: r.target,
        round: r.round,
        gbPerS: gbps(r.result.bytesPerS),
        bytes: r.result.bytes,
        ranges: r.result.requests,
        headersMs: r.result.headersMs,
        serverCores: r.serverCores,
        serverCpuSPerGB: r.serverCpuSPerGB,
        generatorCores: r.result.generatorCpuCores,
        generatorEventLoopUtilization: r.result.generatorEventLoopUtilization,
        machineBusyCores: r.machineBusyCores,
        gc: r.gc,
      })),
      best: Object.fromEntries(
        ([bestA, bestB, bestC].filter(Boolean) as ThroughputRun[]).map((b) => [b.target, { round: b.round, gbPerS: gbps(b.result.bytesPerS), serverCores: b.serverCores, serverCpuSPerGB: b.serverCpuSPerGB }]),
      ),
      ratios: { cOverA: ratioCA, cOverB: ratioCB, bOverA: ratioBA },
      target: ratioCA !== null ? { ratio: 'c/a', min: TARGET_OF_NGINX, met: throughputMet } : { ratio: 'c/b', min: TARGET_OF_NODE, met: throughputMet },
    },
    idleSeekFirstByteMs: idle,
    profile,
    concurrency: streams ? { ...streams, target: { allHealthy: true, seekP99MsBelow: TARGET_SEEK_P99_MS, met: concurrencyMet } } : null,
    concurrencyProfile: streamProfile,
    concurrencyControl: control,
  });
});
