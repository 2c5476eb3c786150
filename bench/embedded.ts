/**
 * npm run bench:embedded — does the HTTP event loop keep accepting while the embedded database works?
 *
 *   (a) baseline: the real service on PGlite run on the main thread (`thread: 'main'`);
 *   (b) the real service as it runs by default: PGlite on its own worker thread.
 *
 * Each target is createService on a fresh data directory on disk (durable commits, fdatasync per
 * commit), in its own child process (this file, forked with `serve <thread> <dir>`). Here, the
 * load: BENCH_CLIENTS patients in a closed loop, each booking a free slot, cancelling it and
 * reading "my appointments". During the measured window, 32 new TCP connections, spread evenly,
 * each send a raw `GET /api/health/live`; the time from starting the connect to the answer's first
 * byte is what the target is about: (b) p99 ≤ 200 ms. Runs go a, b, a, b (BENCH_ROUNDS pairs).
 *
 * Env: BENCH_DURATION_S (10), BENCH_WARMUP_S (2), BENCH_CLIENTS (16), BENCH_SLOTS (64),
 *      BENCH_ROUNDS (2). Any answer other than 2xx or 409 slot_taken fails the run (exit 1).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config';
import { openDatabase } from '../src/db';
import { createStaffAccount } from '../src/modules/identity/staff-accounts';
import { newTotpSecret, totpCodeAt } from '../src/modules/identity/totp';
import { createService, type Service } from '../src/server';
import { reportStartupFailure, serveParent, type ChildServer } from './lib/child';
import { busyCores, cpuSnapshot, threadSched, threadSchedDelta } from './lib/cpu';
import { BenchFailure, envInt, runBench, type Bench } from './lib/harness';
import { getJson, registerPatients, send, summarise, type LatencySummary, type SignedIn } from './lib/loadgen';

const HOST = '127.0.0.1';
const PROBES = 32;
const TARGET_P99_MS = 200;
type Thread = 'main' | 'worker';
const TARGETS = { a: 'main', b: 'worker' } as const satisfies Record<string, Thread>;

// ---- child: one target ---------------------------------------------------------------------

/** One clinician, signed in with TOTP through the API (as test/fixtures.ts newStaff), open every day all day. */
async function openClinicianAllWeek(service: Service): Promise<string> {
  const email = `bench.gp.${process.pid}@example.com`;
  const password = 'quiet-river-stone-lamp-91';
  const secret = newTotpSecret();
  const { id } = await service.deps.scopes.system('bench: users add', { requestId: `bench-${process.pid}`, clientIp: null, userAgent: 'confidant-bench' }, (scope) =>
    createStaffAccount(scope, { email, displayName: 'Bench GP', role: 'clinician', password, mfa: { secret, box: service.deps.identity.mfaSecrets } }),
  );
  let cookie: string | undefined;
  let csrf = 'none';
  const call = async (method: 'POST' | 'PUT', url: string, payload: object) => {
    const res = await service.built.app.inject({ method, url, payload, headers: { 'x-csrf-token': csrf, ...(cookie ? { cookie } : {}) } });
    if (res.statusCode !== 200) throw new Error(`${method} ${url}: HTTP ${res.statusCode} ${res.body.slice(0, 300)}`);
    const session = res.cookies.find((c) => c.name === 'confidant_session');
    if (session) cookie = `confidant_session=${session.value}`;
    csrf = (res.json() as { csrfToken?: string }).csrfToken ?? csrf;
  };
  await call('POST', '/api/auth/sign-in', { email, password });
  await call('POST', '/api/auth/mfa/verify', { code: totpCodeAt(secret) });
  await call('PUT', `/api/clinicians/${id}/availability`, { rules: [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, start: '00:00', end: '24:00' })) });
  return id;
}

async function serveTarget(thread: Thread, dir: string) {
  const env = { DATA_DIR: dir, CONFIDANT_DEMO: '0', LOG_LEVEL: 'silent', REGISTRATIONS_PER_ADDRESS: '1000000', MAX_FUTURE_BOOKINGS: '50', HOST, PORT: '0' };
  const config = loadConfig(env);
  const db = await openDatabase({ kind: 'pglite', dataDir: path.join(dir, 'pglite'), serviceRole: config.serviceRole, thread });
  const service = await createService(config, { db, sweepRecordings: false });
  const clinicianId = await openClinicianAllWeek(service);
  await service.built.app.listen({ port: 0, host: HOST });
  const address = service.built.app.server.address();
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const handlers = { clinician: () => clinicianId, 'loop-reset': () => void loop.reset(), 'loop-max': () => loop.max / 1e6 };
  // createService does not close a database it was given.
  serveParent(typeof address === 'object' && address ? address.port : 0, handlers, () => service.close().then(() => db.close()));
}

// ---- parent: the load and the probes -------------------------------------------------------

type Target = { name: keyof typeof TARGETS; child: ChildServer; clinicianId: string; patients: SignedIn[]; slots: string[] };

/** Time from starting a fresh connect to the first byte of the answer to a raw GET. */
function probe(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const socket = net.connect({ host: HOST, port });
    socket.setTimeout(10_000, () => socket.destroy(new BenchFailure('probe: no answer within 10 s')));
    socket.on('error', reject);
    socket.once('data', (chunk: Buffer) => {
      const ms = performance.now() - t0;
      socket.destroy();
      if (chunk.toString('latin1').startsWith('HTTP/1.1 200')) resolve(ms);
      else reject(new BenchFailure(`probe: ${chunk.toString('latin1').slice(0, 100)}`));
    });
    socket.write(`GET /api/health/live HTTP/1.1\r\nHost: ${HOST}:${port}\r\nConnection: close\r\n\r\n`);
  });
}

interface Run {
  round: number;
  target: string;
  rps: number;
  bookingsPerS: number;
  slotTaken: number;
  firstByteMs: LatencySummary;
  serverLoop: number;
  /** ms per wall second: the main thread on a CPU, and ready to run with none free; all other threads (PGlite's worker, libuv, GC) on a CPU. */
  threads: { mainRun: number; mainWait: number; othersRun: number };
  /** The longest the main thread's event loop went without a turn (ms). */
  loopDelayMaxMs: number;
  machineCores: number;
}

async function measure(t: Target, round: number, opts: { warmupS: number; durationS: number }): Promise<Run> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: t.patients.length });
  const from = performance.now() + opts.warmupS * 1000;
  const to = from + opts.durationS * 1000;
  let answered = 0;
  let booked = 0;
  let slotTaken = 0;
  let failed: Error | undefined;
  const call = async (p: SignedIn, method: 'GET' | 'POST', urlPath: string, json?: object) => {
    const res = await send(agent, HOST, t.child.port, {
      method,
      path: urlPath,
      headers: { cookie: p.cookie, 'x-csrf-token': p.csrfToken, ...(json ? { 'content-type': 'application/json' } : {}) },
      ...(json ? { body: JSON.stringify(json) } : {}),
    });
    const now = performance.now();
    const counted = now >= from && now <= to;
    if (counted) answered++;
    const taken = res.status === 409 && res.body.includes('"slot_taken"');
    if ((res.status < 200 || res.status > 299) && !taken) throw new BenchFailure(`${method} ${urlPath}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
    return { ...res, taken, counted };
  };
  const patientLoop = async (p: SignedIn) => {
    while (!failed && performance.now() < to) {
      const startsAt = t.slots[Math.floor(Math.random() * t.slots.length)]!;
      const res = await call(p, 'POST', '/api/appointments', { clinicianId: t.clinicianId, startsAt, mode: 'audio', reason: 'Persistent cough for two weeks' });
      if (res.counted && res.taken) slotTaken++;
      else if (res.counted) booked++;
      if (res.taken) continue;
      await call(p, 'POST', `/api/appointments/${(JSON.parse(res.body) as { id: string }).id}/cancel`);
      await call(p, 'GET', '/api/appointments');
    }
  };
  const stopOnFailure = (err: unknown) => void (failed ??= err instanceof Error ? err : new Error(String(err)));
  const spacing = (opts.durationS * 1000) / PROBES;
  const probes: Promise<number>[] = Array.from({ length: PROBES }, (_, i) =>
    new Promise((r) => setTimeout(r, from + (i + 0.5) * spacing - performance.now())).then(() => probe(t.child.port)),
  );
  let cpu0 = cpuSnapshot();
  let sched0 = threadSched(t.child.pid);
  const started = new Promise<void>((r) => setTimeout(r, from - performance.now())).then(async () => {
    cpu0 = cpuSnapshot();
    sched0 = threadSched(t.child.pid);
    await Promise.all([t.child.call('usage-reset'), t.child.call('loop-reset')]);
  });
  await Promise.all([...t.patients.map((p) => patientLoop(p).catch(stopOnFailure)), ...probes.map((p) => p.catch(stopOnFailure)), started]);
  agent.destroy();
  if (failed) throw failed;
  const sched = threadSchedDelta(t.child.pid, sched0, threadSched(t.child.pid), performance.now() - from);
  const [usage, loop] = await Promise.all([t.child.call<{ eventLoopUtilization: number }>('usage'), t.child.call<number>('loop-max')]);
  return {
    round,
    target: t.name,
    rps: answered / opts.durationS,
    bookingsPerS: booked / opts.durationS,
    slotTaken,
    firstByteMs: summarise(await Promise.all(probes)),
    serverLoop: usage.eventLoopUtilization,
    threads: { mainRun: sched.main.runMsPerS, mainWait: sched.main.waitMsPerS, othersRun: sched.others.runMsPerS },
    loopDelayMaxMs: loop,
    machineCores: busyCores(cpu0, cpuSnapshot(), os.cpus().length),
  };
}

async function main(bench: Bench) {
  const opts = {
    durationS: envInt('BENCH_DURATION_S', 10, 1, 300),
    warmupS: envInt('BENCH_WARMUP_S', 2, 0, 60),
    clients: envInt('BENCH_CLIENTS', 16, 1, 200),
    slots: envInt('BENCH_SLOTS', 64, 1, 500),
    rounds: envInt('BENCH_ROUNDS', 2, 1, 10),
  };
  const { log } = bench;
  log(`load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}, ${os.cpus().length} cores; ${opts.clients} clients, ${opts.slots} slots, ${opts.warmupS}s + ${opts.durationS}s per run`);
  const targets: Target[] = [];
  for (const [name, thread] of Object.entries(TARGETS) as [keyof typeof TARGETS, Thread][]) {
    const dir = mkdtempSync(path.join(os.tmpdir(), `confidant-bench-embedded-${name}-`));
    await bench.defer(`removing ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
    const child = await bench.startChild(`${name} (${thread} thread)`, fileURLToPath(import.meta.url), ['serve', thread, dir]);
    const clinicianId = await child.call<string>('clinician');
    const patients = await registerPatients(HOST, child.port, opts.clients);
    // Two days ahead in the clinic's zone: no slot starts (and stops being bookable) during the run.
    const day = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/London' }).format(new Date(Date.now() + 2 * 86_400_000));
    const free = await getJson<{ slots: { startsAt: string }[] }>(HOST, child.port, { path: `/api/slots?clinicianId=${clinicianId}&from=${day}&limit=${opts.slots}`, headers: { cookie: patients[0]!.cookie } }, 'free slots');
    const slots = free.slots.map((s) => s.startsAt);
    if (slots.length < opts.slots) throw new BenchFailure(`only ${slots.length} free slots`);
    targets.push({ name, child, clinicianId, patients, slots });
    log(`${child.name}: ready on port ${child.port}, ${patients.length} patients, ${slots.length} slots`);
  }

  const runs: Run[] = [];
  const row = (cells: (string | number)[]) => console.log(cells.map((c, i) => String(c).padStart([5, 6, 7, 7, 6, 7, 7, 7, 7, 9, 10, 14, 11, 8][i]!)).join(' '));
  const n = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  console.log('\nfirst byte (fb) in ms; 32 new connections per run, so p99 is the slowest of the 32. run, wait, others: ms per second\n');
  row(['round', 'target', 'req/s', 'book/s', '409s', 'fb p50', 'fb p90', 'fb p99', 'fb max', 'main loop', 'loop stall', 'main run/wait', 'others run', 'machine']);
  for (let round = 1; round <= opts.rounds; round++) {
    for (const t of targets) {
      const r = await measure(t, round, opts);
      runs.push(r);
      const { p50, p90, p99, max } = r.firstByteMs;
      const { mainRun, mainWait, othersRun } = r.threads;
      row([round, r.target, n(r.rps), n(r.bookingsPerS), r.slotTaken, n(p50), n(p90), n(p99), n(max), `${n(r.serverLoop * 100)}%`, `${n(r.loopDelayMaxMs)} ms`, `${n(mainRun)} / ${n(mainWait)}`, n(othersRun), n(r.machineCores, 2)]);
    }
  }
  console.log();
  let met = true;
  for (let round = 1; round <= opts.rounds; round++) {
    const [a, b] = (['a', 'b'] as const).map((name) => runs.find((r) => r.round === round && r.target === name)!) as [Run, Run];
    const pass = b.firstByteMs.p99 <= TARGET_P99_MS;
    met &&= pass;
    console.log(
      `round ${round}: first-byte p99 (b) ${n(b.firstByteMs.p99)} ms, (a) ${n(a.firstByteMs.p99)} ms, b/a ${n(b.firstByteMs.p99 / a.firstByteMs.p99, 2)}; ` +
        `req/s b/a ${n(b.rps / a.rps, 2)}; (b) p99 ≤ ${TARGET_P99_MS} ms: ${pass ? 'PASS' : 'MISS'}`,
    );
  }
  console.log(`\ntarget: (b) first-byte p99 ≤ ${TARGET_P99_MS} ms in every round: ${met ? 'PASS' : 'MISS'}`);
  bench.writeResults({ options: opts, runs });
}

if (process.argv[2] === 'serve') serveTarget(process.argv[3] as Thread, process.argv[4]!).catch(reportStartupFailure);
else runBench('embedded', {}, main);
