import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, sql } from '../../src/db';
import { runCli, startServer, type Running } from '../process/spawn';
import { faultTable, recoveryMs, saveReport, type FaultRow } from './fault-report';
import { HealthWatch } from './health-watch';
import { Load, registerPatients, STABLE_503_CODES, summarize, verifyWrites, type AppointmentRow, type Patient } from './load';
import { mountTmpfs, tmpfsUnavailableReason, type Tmpfs } from './tmpfs';

/**
 * Issue 13, embedded mode: the data directory on a small tmpfs, a load of patients, then the
 * filesystem filled to ENOSPC by a filler file, and freed again. While full: the process lives,
 * writes answer 503 storage_full (never 500), readiness answers 503 naming the disk, liveness
 * answers; which reads still work is reported. After the filler is deleted: readiness green by
 * itself within 2 s, writes work again, every acknowledged write is present and no abandoned one,
 * and `confidant audit verify` passes (with the server stopped: one process per data directory).
 */

const skipReason = process.env.TEST_DATABASE === 'postgres' ? 'embedded (PGlite) runs only' : tmpfsUnavailableReason();

const DEADLINE_MS = 3_000;
const SLACK_MS = 1_500;
const RECOVERY_MS = 2_000;
const PATIENTS = 3;
/** Readiness must name the disk below this. */
const DISK_MIN_FREE_MB = 8;
/**
 * Room left after start-up: a new 16 MB WAL segment and the load's writes must fit, with more
 * than DISK_MIN_FREE_MB to spare once the filler is gone. (A fresh data directory with the demo
 * clinic measured 40 MB: PGlite's catalog, one 16 MB WAL segment, the demo recordings.)
 */
const HEADROOM_MB = 40;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const GETS = ['/api/health/live', '/api/health/ready', '/api/health', '/api/session', '/api/slots?limit=5', '/api/appointments', '/api/profile', '/api/notifications'];

describe.skipIf(!!skipReason)(`embedded database: disk full${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let fs: Tmpfs;
  let env: Record<string, string>;
  let server: Running | undefined;
  const deaths: { at: number; code: number | null; signal: string | null; output: string }[] = [];
  let stopping = false;
  let patients: Patient[];
  let load: Load;
  let watch: HealthWatch;
  const notes: string[] = [];
  let row: FaultRow | undefined;

  async function probeGets(p: Patient) {
    return Promise.all(
      GETS.map(async (path) => {
        const t = Date.now();
        try {
          const res = await fetch(`${server!.url}${path}`, { headers: { cookie: p.cookie }, signal: AbortSignal.timeout(DEADLINE_MS + SLACK_MS) });
          const body = (await res.json().catch(() => undefined)) as { error?: { code?: string } } | undefined;
          return { path, status: res.status, code: body?.error?.code, ms: Date.now() - t };
        } catch (err) {
          return { path, status: 0, code: (err as Error).name, ms: Date.now() - t };
        }
      }),
    );
  }

  const alive = () => !!server && server.child.exitCode === null && server.child.signalCode === null;

  beforeAll(async () => {
    fs = mountTmpfs(256);
    env = {
      DATA_DIR: path.join(fs.dir, 'data'),
      CONFIDANT_DEMO: '1',
      DISK_MIN_FREE_MB: String(DISK_MIN_FREE_MB),
      MAX_FUTURE_BOOKINGS: '50',
      REQUEST_DEADLINE_MS: String(DEADLINE_MS),
      REGISTRATIONS_PER_ADDRESS: '1000',
      LOG_LEVEL: 'warn',
    };
    server = await startServer(env, 90_000);
    const mine = server;
    void mine.exited.then(({ code, signal }) => {
      if (!stopping) deaths.push({ at: Date.now(), code, signal, output: mine.output().slice(-3000) });
    });
    const used = Math.ceil(fs.usedBytes() / 2 ** 20);
    fs.resize(used + HEADROOM_MB);
    notes.push(`data directory after start-up: ${used} MB; tmpfs resized to ${used + HEADROOM_MB} MB`);
    patients = await registerPatients(server.url, PATIENTS);
    watch = new HealthWatch(() => server!.url, 100, DEADLINE_MS + SLACK_MS);
    watch.start();
    load = new Load({ baseUrl: () => server!.url, patients, thinkMs: 50 });
    load.start();
  }, 120_000);

  afterAll(async () => {
    try {
      await load?.stop();
      await watch?.stop();
      if (alive()) {
        stopping = true;
        server!.child.kill('SIGKILL');
        await server!.exited;
      }
    } finally {
      fs?.unmount();
    }
    if (row) {
      console.log(`\nEmbedded disk full (deadline ${DEADLINE_MS} ms, slack ${SLACK_MS} ms, ${PATIENTS} patients):\n${faultTable([row])}\n`);
      console.log(`Full measurements: ${saveReport('embedded-disk-full', { row, deaths, requests: load?.requests, writes: load?.writes, probes: watch?.probes })}`);
    }
  }, 60_000);

  it('answers storage_full while the disk is full, recovers by itself when it is freed, and loses nothing', async () => {
    const from = Date.now();
    await sleep(2_000);
    expect(load.writes.some((w) => w.outcome === 'acknowledged'), 'the load books before the fault').toBe(true);

    const fullAt = Date.now();
    const filled = fs.fill();
    notes.push(`filler ${Math.round(filled / 2 ** 20)} MB; free after filling ${fs.freeBytes()} bytes`);
    await sleep(2_000);
    // Which reads still answer while nothing can be written (reads of patient data are audited).
    const gets = await probeGets(patients[0]!);
    notes.push(`GETs while full: ${gets.map((g) => `${g.path} ${g.status}${g.code ? ` ${g.code}` : ''} (${g.ms} ms)`).join(', ')}`);
    await sleep(2_000);
    const freedAt = Date.now();
    fs.free();
    notes.push(`free after deleting the filler: ${Math.round(fs.freeBytes() / 2 ** 20)} MB`);
    await watch.waitRecovered(fullAt, freedAt, 10_000, () => !alive());
    await sleep(2_000);
    await load.pause();
    const to = Date.now();

    const requests = load.requests.filter((r) => r.startedAt >= from && r.startedAt < to);
    const whileFull = requests.filter((r) => r.startedAt >= fullAt && r.startedAt < freedAt);
    const writes = load.writes.filter((w) => w.startedAt >= from && w.startedAt < to);
    const summary = summarize(requests, writes);
    const t = watch.transitions(fullAt, freedAt, to);
    row = { fault: 'disk full 4 s (embedded)', faultAt: fullAt, redAt: t.redAt, acceptingAt: freedAt, greenAt: t.greenAt, summary, maxProbeLatencyMs: t.maxProbeLatencyMs, notes };
    const readsWhileFull = summarize(whileFull.filter((r) => r.kind === 'slots' || r.kind === 'list'), []).byAnswer;
    notes.push(`reads while full: ${JSON.stringify(readsWhileFull)}`);
    if (t.redAnswers.length) notes.push(`readiness answered: ${t.redAnswers.slice(0, 4).join(' | ')}`);
    for (const d of deaths) notes.push(`PROCESS EXITED at +${((d.at - fullAt) / 1000).toFixed(2)}s (code ${d.code}, signal ${d.signal})`);
    for (const d of deaths) console.log(`server output before it exited:\n${d.output}`);
    console.log(`\n${faultTable([row])}\n`);

    // Stop the server before reading its data directory (one process per data directory).
    const wasAlive = alive();
    stopping = true;
    if (wasAlive) {
      server!.child.kill('SIGTERM');
      const { code } = await server!.exited;
      notes.push(`server stopped with exit code ${code}`);
    }
    const db = await openDatabase({ kind: 'pglite', dataDir: path.join(env.DATA_DIR!, 'pglite'), serviceRole: 'confidant_app' });
    let problems: string[];
    try {
      const appts = await sql<AppointmentRow>`select id, patient_id, clinician_id, starts_at, status from appointments where patient_id in (${sql.join(patients.map((p) => p.id))})`.execute(db.owner);
      const table = await sql<{ present: boolean }>`select to_regclass('public.idempotency_keys') is not null as present`.execute(db.owner);
      let keys: Set<string> | undefined;
      if (table.rows[0]!.present) {
        const k = await sql<{ key: string }>`select key from idempotency_keys where key in (${sql.join(load.writes.map((w) => w.key))})`.execute(db.owner);
        keys = new Set(k.rows.map((r) => r.key));
      }
      problems = verifyWrites(patients, load.writes, appts.rows, keys);
      if (!keys) problems.push('table idempotency_keys does not exist: whether abandoned writes left keys cannot be checked');
    } finally {
      await db.close();
    }
    const verify = await runCli(['audit', 'verify'], env);

    expect
      .soft(
        gets
          .filter((g) => !(g.status === 200 || (g.status === 503 && g.code && [...STABLE_503_CODES, ...(g.path === '/api/health/ready' ? ['not_ready'] : [])].includes(g.code))))
          .map((g) => `${g.path} ${g.status} ${g.code ?? ''}`),
        'GETs answer 200 or 503 with a stable code while the disk is full',
      )
      .toEqual([]);
    expect.soft(gets.find((g) => g.path === '/api/health/live')?.status, 'liveness answers while the disk is full').toBe(200);
    // Reads that need no write (free slots, for a signed-in patient) are served; reads of patient
    // data (the session's own account too) need their audit event written: served only if it could
    // be made durable (the WAL segment in use may still have room), else storage_full.
    expect.soft(gets.find((g) => g.path === '/api/slots?limit=5')?.status, 'free slots answer while the disk is full').toBe(200);
    for (const path of ['/api/session', '/api/profile']) {
      const got = gets.find((g) => g.path === path);
      expect.soft(got?.status === 200 || got?.code === 'storage_full', `${path} answers 200 or storage_full (${got?.status} ${got?.code ?? ''})`).toBe(true);
    }
    expect.soft(deaths.map((d) => `exit code ${d.code} signal ${d.signal}`), 'the process stays alive').toEqual([]);
    if (!deaths.length) expect.soft(watch.live(from, to).filter((p) => p.status !== 200).length, 'liveness answers 200 throughout').toBe(0);
    expect
      .soft(summary.disallowed.map((d) => `${d.what} ×${d.count}`), 'answers are 2xx, an expected refusal, or 503 with a stable code and Retry-After')
      .toEqual([]);
    expect.soft(whileFull.filter((r) => (r.kind === 'book' || r.kind === 'cancel') && r.status === 503 && r.code === 'storage_full').length, 'writes answer 503 storage_full while the disk is full').toBeGreaterThan(0);
    const diskRed = watch.ready(fullAt, freedAt + 100).filter((p) => p.status === 503 && p.details && p.details.disk !== undefined && p.details.disk !== 'ok');
    expect.soft(diskRed.length, 'readiness answers 503 naming the disk while it is full').toBeGreaterThan(0);
    expect
      .soft(requests.filter((r) => r.latencyMs > DEADLINE_MS + SLACK_MS).slice(0, 10).map((r) => `${r.kind} ${r.status || r.error} ${r.code ?? ''} ${r.latencyMs} ms`), `no request waits past the deadline (${DEADLINE_MS} + ${SLACK_MS} ms)`)
      .toEqual([]);
    const recovery = recoveryMs(row);
    expect.soft(recovery !== undefined && recovery <= RECOVERY_MS, `readiness green again within ${RECOVERY_MS} ms of the disk being freed (took ${recovery ?? 'forever'})`).toBe(true);
    const recoveredAt = t.greenAt ?? freedAt;
    expect.soft(writes.filter((w) => w.kind === 'book' && w.outcome === 'acknowledged' && w.startedAt >= recoveredAt).length, 'bookings are acknowledged again after the disk is freed').toBeGreaterThan(0);
    expect.soft(writes.filter((w) => w.committed === undefined).map((w) => `${w.kind} ${w.key}`), 'every unknown outcome resolves by retrying its key').toEqual([]);
    expect.soft(problems, 'every acknowledged write is present, and no abandoned one').toEqual([]);
    expect.soft(verify.code, `confidant audit verify passes: ${verify.stdout}${verify.stderr}`).toBe(0);
  }, 90_000);
});
