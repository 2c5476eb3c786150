import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startServer, type Running } from '../process/spawn';
import { faultTable, recoveryMs, saveReport, type FaultRow } from './fault-report';
import { HealthWatch } from './health-watch';
import { Load, registerPatients, summarize, verifyWrites, type AppointmentRow, type Patient, type RequestRecord } from './load';
import { createFaultCluster, pgClusterUnavailableReason, type FaultCluster } from './pg-cluster';

/**
 * Issue 13, "survive the database": one server on a throwaway PostgreSQL cluster (never the
 * shared one on 5432), a load of patients booking, reading and cancelling, and four faults in
 * sequence: every service connection terminated; a fast restart; the cluster stopped for 10 s;
 * the cluster frozen (SIGSTOP) for 15 s. After each: the process lived, every answer was 2xx, an
 * expected refusal or a 503 with a stable code and Retry-After, none waited past the deadline,
 * readiness went red and came back green by itself within 2 s of the database accepting
 * connections, the database holds exactly what the patients were told, and the audit chain
 * verifies.
 *
 * "Accepting connections" is measured per fault: terminate — the database never stopped (the
 * moment the backends were ended); restart and stop — the server's own log line "ready to accept
 * connections" (ms, same clock); freeze — the first real connection (startup, auth, select 1)
 * after SIGCONT, which queues behind whatever connection attempts piled up in the listen queue.
 *
 * A frozen server still completes TCP handshakes (the kernel does it, into the listen queue), so
 * a connection attempt "succeeds" at once and then waits forever for the startup reply; queries on
 * open connections wait forever too. Nothing about that excuses a slow answer: the service must
 * bound connection establishment, pool waits and queries by the request's deadline itself
 * (the database's own timeouts cannot fire while it is stopped). The one thing that is not the
 * service's choice is what a COMMIT already sent does: it may commit when the server is thawed,
 * so a deadline that fires during COMMIT must answer outcome_unknown, never deadline_exceeded.
 */

const skipReason =
  process.env.TEST_DATABASE !== 'postgres' ? 'runs with TEST_DATABASE=postgres' : pgClusterUnavailableReason();

const DEADLINE_MS = 3_000;
/** Time allowed past the deadline for the answer to be written and read, on a busy 2-core machine. */
const SLACK_MS = 1_500;
const RECOVERY_MS = 2_000;
const PATIENTS = 6;
/** Red is required only when the database was unreachable for at least this long. */
const RED_REQUIRED_DOWN_MS = 1_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!!skipReason)(`PostgreSQL faults under load${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let cluster: FaultCluster;
  let dataDir: string;
  let env: Record<string, string>;
  let server: Running;
  let serverStartedAt = 0;
  let stopping = false;
  const deaths: { at: number; code: number | null; signal: string | null; output: string }[] = [];
  let patients: Patient[];
  let load: Load;
  let watch: HealthWatch;
  let windowStart = 0;
  const rows: FaultRow[] = [];

  const alive = () => server.child.exitCode === null && server.child.signalCode === null;

  async function start(): Promise<void> {
    server = await startServer(env, 90_000);
    serverStartedAt = Date.now();
    const mine = server;
    void mine.exited.then(({ code, signal }) => {
      if (!stopping) deaths.push({ at: Date.now(), code, signal, output: mine.output().slice(-3000) });
    });
  }

  /** A dead server is replaced (and the death recorded) so that later faults still test something. */
  async function replaceIfDead(): Promise<void> {
    if (alive()) return;
    await start();
    // Let the load reach the new server, so the window's later checks judge it too.
    await sleep(1_500);
  }

  async function stopServer(): Promise<void> {
    if (!server || !alive()) return;
    stopping = true;
    server.child.kill('SIGTERM');
    const done = await Promise.race([server.exited.then(() => true), sleep(20_000).then(() => false)]);
    if (!done) {
      server.child.kill('SIGKILL');
      await server.exited;
    }
  }

  async function dataProblems(): Promise<string[]> {
    return cluster.withAdmin(async (c) => {
      const appts = await c.query<AppointmentRow>(
        'select id, patient_id, clinician_id, starts_at, status from appointments where patient_id = any($1)',
        [patients.map((p) => p.id)],
      );
      const table = await c.query<{ present: boolean }>(`select to_regclass('public.idempotency_keys') is not null as present`);
      let keys: Set<string> | undefined;
      if (table.rows[0]!.present) {
        const k = await c.query<{ key: string }>('select key from idempotency_keys where key = any($1)', [load.writes.map((w) => w.key)]);
        keys = new Set(k.rows.map((r) => r.key));
      }
      const problems = verifyWrites(patients, load.writes, appts.rows, keys);
      if (!keys) problems.push('table idempotency_keys does not exist: whether abandoned writes left keys cannot be checked');
      return problems;
    });
  }

  /** Ends the current window: the load finishes what it was doing (retries included) and waits. */
  async function closeWindow(): Promise<{ from: number; to: number }> {
    await load.pause();
    const to = Date.now();
    const from = windowStart;
    windowStart = to;
    return { from, to };
  }

  const overDeadline = (r: RequestRecord) => r.latencyMs > DEADLINE_MS + SLACK_MS;
  const describeRequest = (r: RequestRecord) =>
    `${r.kind}${r.attempt ? ` retry ${r.attempt}` : ''} ${r.status || r.error} ${r.code ?? ''} ${r.latencyMs} ms at +${((r.startedAt - serverStartedAt) / 1000).toFixed(1)}s`;

  interface Injected {
    acceptingAt: number;
    /** How long the database refused or ignored connections (for "must readiness go red?"). */
    downMs: number;
    notes?: string[];
  }

  async function runFault(fault: string, inject: () => Promise<Injected>): Promise<void> {
    expect(alive(), 'the server is running before the fault').toBe(true);
    const notes: string[] = [];
    const before = await watch.waitGreen(Date.now() - 200, 5_000);
    if (before === undefined) notes.push(`readiness not green before the fault (last: ${JSON.stringify(watch.latestReady())})`);

    const faultAt = Date.now();
    const deathsBefore = deaths.length;
    const { acceptingAt, downMs, notes: injected = [] } = await inject();
    notes.push(...injected, `database down ${downMs} ms`);
    await watch.waitRecovered(faultAt, acceptingAt, 10_000, () => !alive());
    // The audit chain as it stands after recovery, checked while the load runs on (the CLI
    // takes seconds to start); writes after this point are checked by the next fault's.
    const verifying = alive() ? runCli(['audit', 'verify'], env) : undefined;
    // The load runs on after recovery: writes must be acknowledged again.
    await sleep(1_500);
    const died = deaths.slice(deathsBefore);
    await replaceIfDead();
    for (const d of deaths.slice(deathsBefore)) {
      notes.push(`PROCESS EXITED at +${((d.at - faultAt) / 1000).toFixed(2)}s (code ${d.code}, signal ${d.signal}); replaced by a new server`);
      console.log(`[${fault}] server output before it exited:\n${d.output}`);
    }
    const { from, to } = await closeWindow();
    const problems = await dataProblems();
    load.resume();
    const verify = await (verifying ?? runCli(['audit', 'verify'], env));

    const requests = load.requests.filter((r) => r.startedAt >= from && r.startedAt < to);
    const writes = load.writes.filter((w) => w.startedAt >= from && w.startedAt < to);
    const summary = summarize(requests, writes);
    const t = watch.transitions(faultAt, acceptingAt, to);
    const row: FaultRow = { fault, faultAt, redAt: t.redAt, acceptingAt, greenAt: t.greenAt, summary, maxProbeLatencyMs: t.maxProbeLatencyMs, notes };
    if (t.redAnswers.length) notes.push(`readiness answered: ${t.redAnswers.slice(0, 4).join(' | ')}`);
    if (t.flaps) notes.push(`readiness went red ${t.flaps} more time(s) after green`);
    rows.push(row);
    console.log(`\n${faultTable([row])}\n`);

    // The issue's assertions, all of them reported even when the first fails.
    expect.soft(died.map((d) => `exit code ${d.code} signal ${d.signal}`), 'the process stays alive').toEqual([]);
    // (A process that died cannot answer; that is reported above.)
    if (!died.length) expect.soft(watch.live(faultAt, to).filter((p) => p.status !== 200).length, 'liveness answers 200 throughout').toBe(0);
    expect
      .soft(summary.disallowed.map((d) => `${d.what} ×${d.count}`), 'answers are 2xx, an expected refusal, or 503 with a stable code and Retry-After')
      .toEqual([]);
    expect
      .soft(requests.filter(overDeadline).slice(0, 10).map(describeRequest), `no request waits past the deadline (${DEADLINE_MS} + ${SLACK_MS} ms)`)
      .toEqual([]);
    const probeTimeouts = watch.ready(faultAt, to).filter((p) => p.error === 'probe_timeout').length;
    expect.soft(probeTimeouts, `readiness answers within ${DEADLINE_MS + SLACK_MS} ms`).toBe(0);
    if (downMs >= RED_REQUIRED_DOWN_MS) expect.soft(t.redAt, 'readiness goes red while the database is down').toBeDefined();
    const recovery = recoveryMs(row);
    expect.soft(recovery !== undefined && recovery <= RECOVERY_MS, `readiness green again within ${RECOVERY_MS} ms of the database accepting connections (took ${recovery ?? 'forever'})`).toBe(true);
    const recoveredAt = t.greenAt ?? acceptingAt;
    const ackAfter = writes.filter((w) => w.kind === 'book' && w.outcome === 'acknowledged' && w.startedAt >= recoveredAt).length;
    expect.soft(ackAfter, 'bookings are acknowledged again after recovery').toBeGreaterThan(0);
    expect.soft(writes.filter((w) => w.committed === undefined).map((w) => `${w.kind} ${w.key}`), 'every unknown outcome resolves by retrying its key').toEqual([]);
    expect.soft(problems, 'every acknowledged write is present, and no abandoned one').toEqual([]);
    expect.soft(verify.code, `confidant audit verify passes: ${verify.stdout}${verify.stderr}`).toBe(0);
  }

  beforeAll(async () => {
    cluster = await createFaultCluster();
    dataDir = mkdtempSync(path.join(tmpdir(), 'confidant-faults-'));
    env = {
      DATABASE_URL: cluster.serviceUrl,
      DATABASE_OWNER_URL: cluster.ownerUrl,
      DATA_DIR: dataDir,
      CONFIDANT_DEMO: '1',
      // The contract asks for 500, which today's configuration refuses (max 50); the load
      // cancels to stay under 8 per patient, so 50 is plenty.
      MAX_FUTURE_BOOKINGS: '50',
      REQUEST_DEADLINE_MS: String(DEADLINE_MS),
      DATABASE_CONNECT_TIMEOUT: '30',
      REGISTRATIONS_PER_ADDRESS: '1000',
      LOG_LEVEL: 'warn',
    };
    await start();
    patients = await registerPatients(server.url, PATIENTS);
    watch = new HealthWatch(() => server.url, 100, DEADLINE_MS + SLACK_MS);
    watch.start();
    load = new Load({ baseUrl: () => server.url, patients });
    windowStart = Date.now();
    load.start();
  }, 120_000);

  afterAll(async () => {
    try {
      await load?.stop();
      await watch?.stop();
      await stopServer();
    } finally {
      if (cluster?.frozen) cluster.thaw();
      await cluster?.drop();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    }
    if (rows.length) {
      console.log(`\nFault suite (deadline ${DEADLINE_MS} ms, slack ${SLACK_MS} ms, ${PATIENTS} patients):\n${faultTable(rows)}\n`);
      const file = saveReport('postgres-faults', { rows, deaths, requests: load?.requests, writes: load?.writes, probes: watch?.probes });
      console.log(`Full measurements: ${file}`);
    }
  }, 60_000);

  it('serves the load before any fault', async () => {
    await sleep(2_000);
    const { from, to } = await closeWindow();
    const problems = await dataProblems();
    load.resume();
    const requests = load.requests.filter((r) => r.startedAt >= from && r.startedAt < to);
    const summary = summarize(requests, load.writes.filter((w) => w.startedAt >= from && w.startedAt < to));
    const ready = watch.ready(from, to);
    rows.push({ fault: 'none (baseline)', faultAt: from, summary, notes: [] });
    console.log(`\n${faultTable(rows.slice(-1))}\n`);
    expect.soft(summary.writes.acknowledged, 'bookings are acknowledged').toBeGreaterThan(0);
    expect.soft(summary.disallowed.map((d) => `${d.what} ×${d.count}`)).toEqual([]);
    expect.soft(ready.length > 0 && ready.every((p) => p.status === 200), `readiness green (last: ${JSON.stringify(ready.at(-1))})`).toBe(true);
    expect.soft(problems).toEqual([]);
  }, 30_000);

  it('survives every service connection being terminated (pg_terminate_backend)', async () => {
    await runFault('terminate connections', async () => {
      const r = await cluster.terminateServiceConnections();
      return {
        acceptingAt: Date.now(),
        downMs: 0,
        notes: [`terminated ${r.terminated} backends, by state ${JSON.stringify(r.byState)}, by application ${JSON.stringify(r.byApplication)}`],
      };
    });
  }, 40_000);

  it('survives a fast restart of the cluster', async () => {
    await runFault('restart -m fast', async () => {
      const since = Date.now();
      const readyAt = await cluster.restart();
      const shutdownAt = cluster.loggedSince(/received fast shutdown request/, since - 5)[0] ?? since;
      return { acceptingAt: readyAt, downMs: readyAt - shutdownAt };
    });
  }, 45_000);

  it('survives the cluster being stopped for 10 s', async () => {
    await runFault('stopped 10 s', async () => {
      await cluster.stop();
      const stoppedAt = Date.now();
      await sleep(10_000);
      const readyAt = await cluster.start();
      return { acceptingAt: readyAt, downMs: readyAt - stoppedAt };
    });
  }, 60_000);

  it('survives the cluster being frozen (SIGSTOP) for 15 s', async () => {
    await runFault('frozen 15 s', async () => {
      const frozenAt = Date.now();
      let pids: number[] = [];
      let thawedAt: number;
      try {
        pids = await cluster.freeze();
        await sleep(15_000);
      } finally {
        cluster.thaw();
        thawedAt = Date.now();
      }
      const acceptingAt = await cluster.waitAccepting({ timeoutMs: 30_000 });
      return {
        acceptingAt,
        downMs: acceptingAt - frozenAt,
        notes: [`froze ${pids.length} processes; first connection ${acceptingAt - thawedAt} ms after SIGCONT`],
      };
    });
  }, 70_000);

  it('afterwards: retried keys return the first outcome and book nothing twice; the audit chain verifies', async () => {
    expect(alive(), 'the server is running').toBe(true);
    await load.stop();
    expect.soft(await dataProblems(), 'the whole run: every acknowledged write present, no abandoned one').toEqual([]);
    const replays = load.writes.filter((w) => w.kind === 'book' && w.outcome === 'acknowledged').slice(-5);
    expect(replays.length).toBeGreaterThan(0);
    const count = () => cluster.withAdmin(async (c) => (await c.query<{ n: number }>('select count(*)::int as n from appointments')).rows[0]!.n);
    const before = await count();
    const differing: string[] = [];
    for (const w of replays) {
      const p = patients[w.patient]!;
      const res = await fetch(`${server.url}${w.request.path}`, {
        method: 'POST',
        headers: { cookie: p.cookie, 'content-type': 'application/json', 'x-csrf-token': p.csrf, 'idempotency-key': w.key },
        body: JSON.stringify(w.request.body),
      });
      const body = (await res.json()) as { id?: string; error?: { code?: string } };
      // Deep equality, not text: a stored answer (jsonb) comes back with its keys in another order.
      if (res.status !== w.first.status || !isDeepStrictEqual(body, w.first.body)) {
        const first = w.first.body as Record<string, unknown>;
        const fields = Object.keys({ ...first, ...body }).filter((f) => !isDeepStrictEqual(first[f], (body as Record<string, unknown>)[f]));
        differing.push(`${w.key}: first ${w.first.status} ${first.id}, replay ${res.status} ${body.error?.code ?? body.id} (differs in ${fields.join(', ')})`);
      }
    }
    expect.soft(differing, 'a replayed key answers exactly what it first answered').toEqual([]);
    expect.soft((await count()) - before, 'replays booked nothing').toBe(0);
    const verify = await runCli(['audit', 'verify'], env);
    expect.soft(verify.code, `${verify.stdout}${verify.stderr}`).toBe(0);
    expect.soft(deaths.map((d) => `exit code ${d.code} signal ${d.signal}`), 'the process never exited').toEqual([]);
  }, 30_000);
});
