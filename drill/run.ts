/**
 * npm run drill — the breach drill (issue 16).
 *
 * Starts the real service as two processes on one fresh PostgreSQL database (migrated by the
 * owner role; the processes connect as the service role, which owns nothing), holds a real
 * consultation in Chromium (a patient books audio, the GP switches to video, she consents to both
 * being recorded), and then, for each fault case in drill/cases.ts, restarts both processes with
 * that case's fault points (CONFIDANT_FAULTS) and, where the case says so, runs a bad migration on
 * the replay tables' row-level security. Another patient then opens "Consultation replays" in the
 * browser and plays (his own first replay, then the foreign recording's link), and the drill asks
 * for the same things over HTTP with his session cookie, counting every foreign row and byte that
 * reaches him. It records which layer stopped the fault, whether detection fired, and how long the
 * implicated feature took to be off in both processes and the DPO's alert to be raised and pushed.
 * Between cases the DPO acknowledges the alerts and switches the killed features back on (only
 * the DPO may, after an automatic kill), and the migration is undone.
 *
 * Fails (exit 1) if any foreign byte or row reaches the patient, or a case that produces a
 * containment signal is not contained (the feature off in both processes) within 1 s.
 * Writes the report (src/contracts/guard.ts DrillReport) to <DATA_DIR>/drill/last-report.json,
 * where the DPO's home page of `npm start` shows it, and prints it as a table.
 *
 * Env: DATA_DIR (./data: where the report goes), DRILL_CASES (e.g. `1,5`: only those cases),
 * DRILL_KEEP_DATABASE=1 (leave the database for a look afterwards), CHROMIUM_PATH,
 * TEST_PG_ADMIN_URL (test/pg-admin.ts).
 */
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, BrowserContext, Page, Response } from 'playwright-core';
import { DrillReport, type DrillReport as Report } from '../src/contracts/guard';
import { drillReportFile } from '../src/http/routes/guard-routes';
import { SERVICE_ROLE } from '../test/pg-admin';
import { demoPerson, expectHeading, launchBrowser, PageWatch, signInPatient, signInStaff, sleep } from '../test/browser/support';
import { CASES, type FaultCase } from './cases';
import { CHLOE, PATEL, holdRecordedConsultation, until } from './consultation';
import { createDrillDatabase, openReplayRls, visibleToPatient, type DrillDatabase } from './database';
import { AlertStream, Caller, FeatureWatch } from './observe';
import { startPair, stopPair, type Pair } from './processes';

const BEN = demoPerson('ben@demo.confidant.test');
const DPO = demoPerson('dpo@demo.confidant.test');
/** A case that produces a containment signal must have the feature off in both processes within this. */
const CONTAIN_WITHIN_MS = 1_000;
const POLL_GAP_MS = 5;
const CRITICAL = ['egress.blocked', 'rls.violation'];

type DrillCase = Report['cases'][number];

const t0 = Date.now();
const log = (msg: string) => console.log(`drill ${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s  ${msg}`);

// Nothing from the surrounding environment may page anyone or switch fault points on by accident.
for (const k of ['GUARD_WEBHOOK_URL', 'CONFIDANT_FAULTS', 'METRICS_PORT']) delete process.env[k];

// ---------------------------------------------------------------------------------------------
// What reached the other patient

interface Tally {
  rows: number;
  bytes: number;
  /** What happened, in order, for the note: "B GET /api/replays 200: 2 rows, none foreign". */
  seen: string[];
  pending: Promise<void>[];
}
const newTally = (): Tally => ({ rows: 0, bytes: 0, seen: [], pending: [] });

const RECORDING_PATH = /^\/api\/recordings\/([0-9a-f-]{36})(\/media)?$/;

/** Counts, from the browser's own network traffic, the foreign rows and media bytes that arrived. */
function accountBrowser(page: Page, current: () => Tally | undefined, own: () => Set<string>) {
  page.on('response', (res: Response) => {
    const tally = current();
    if (!tally) return;
    const url = new URL(res.url());
    const status = res.status();
    const ok = status >= 200 && status < 300;
    const work = (async () => {
      if (url.pathname === '/api/replays') {
        if (!ok) return void tally.seen.push(`browser list ${status}${await errorCode(res)}`);
        const replays = ((await res.json()) as { replays: { id: string }[] }).replays;
        const foreign = replays.filter((r) => !own().has(r.id)).length;
        tally.rows += foreign;
        tally.seen.push(`browser list 200 (${replays.length} rows, ${foreign} foreign)`);
        return;
      }
      const m = RECORDING_PATH.exec(url.pathname);
      if (!m) return;
      const whose = own().has(m[1]!) ? 'own' : 'foreign';
      const what = m[2] ? 'media' : 'details';
      if (!ok) return void tally.seen.push(`browser ${whose} ${what} ${status}${await errorCode(res)}`);
      if (!m[2]) {
        if (whose === 'foreign') tally.rows++;
        return void tally.seen.push(`browser ${whose} details 200`);
      }
      // What arrived; a media element that stops reading early still counts what the headers promised.
      const bytes = (await res.body().catch(() => null))?.length ?? Number(res.headers()['content-length'] ?? 0);
      if (whose === 'foreign') tally.bytes += bytes;
      tally.seen.push(`browser ${whose} media ${status} (${bytes} bytes)`);
    })().catch((err: Error) => void tally.seen.push(`browser ${url.pathname}: could not read the answer (${err.message})`));
    tally.pending.push(work);
  });
}

async function errorCode(res: Response): Promise<string> {
  const body = (await res.json().catch(() => null)) as { error?: { code?: string } } | null;
  return body?.error?.code ? ` ${body.error.code}` : '';
}

/** Opens a replay in the player and lets it play for a second: how it went, in words. */
async function openReplay(page: Page, recordingId: string, go: () => Promise<unknown>): Promise<string> {
  const details = page.waitForResponse((r) => new URL(r.url()).pathname === `/api/recordings/${recordingId}`, { timeout: 10_000 }).catch(() => null);
  await go();
  const res = await details;
  if (!res) return 'the player asked nothing';
  if (res.status() !== 200) return `refused (${res.status()}${await errorCode(res)})`;
  const video = page.locator('video.replay__video');
  if (!(await video.waitFor({ timeout: 10_000 }).then(() => true, () => false))) return 'no player shown';
  // No named functions inside evaluate: tsx's transform would wrap them in a helper the page lacks.
  const loaded = await video.evaluate(
    (v: HTMLVideoElement) =>
      new Promise<string>((resolve) => {
        if (v.readyState >= 1) return resolve('ready');
        setTimeout(() => resolve(`no metadata (readyState ${v.readyState})`), 10_000);
        v.addEventListener('loadedmetadata', () => resolve('ready'), { once: true });
        v.addEventListener('error', () => resolve(`media error ${v.error?.code}`), { once: true });
      }),
  );
  if (loaded !== 'ready') return loaded;
  await video.evaluate((v: HTMLVideoElement) => {
    v.muted = true;
    return v.play().catch(() => undefined);
  });
  await sleep(1_000);
  return video.evaluate((v: HTMLVideoElement) => `played ${v.currentTime.toFixed(1)} s of ${v.duration.toFixed(1)} s`);
}

/** Ben in the browser on process B: his replays page, his first replay, then the foreign recording's link. */
async function browserPass(page: Page, base: string, foreignId: string, ownConsultations: Set<string>): Promise<string[]> {
  const words: string[] = [];
  const list = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/replays', { timeout: 10_000 }).catch(() => null);
  await page.goto(`${base}/patient/replays`);
  await expectHeading(page, 'Consultation replays');
  await list;
  await sleep(300);
  const shown = await page.locator('main tr[data-consultation-id]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-consultation-id') ?? ''));
  const foreignShown = shown.filter((c) => !ownConsultations.has(c)).length;
  words.push(`his replays page showed ${shown.length} row(s), ${foreignShown} not his`);
  if (shown.length === 0) {
    const said = await page.locator('main [role="alert"], main .notice, main .empty-state').first().innerText({ timeout: 1_000 }).catch(() => null);
    if (said) words.push(`it said "${said.replace(/\s+/g, ' ').trim().slice(0, 120)}"`);
  }
  const play = page.locator('main tr[data-consultation-id] a[href^="/replays/"]').first();
  if ((await play.count()) > 0) {
    const id = (await play.getAttribute('href'))!.split('/').pop()!;
    words.push(`his first replay: ${await openReplay(page, id, () => play.click())}`);
  } else {
    words.push('nothing to play on his page');
  }
  words.push(`the other patient's recording link: ${await openReplay(page, foreignId, () => page.goto(`${base}/replays/${foreignId}`))}`);
  // Leave nothing open on the process before it is restarted.
  await page.goto('about:blank');
  return words;
}

/** The same over HTTP with his session cookie, on process A: the list, the foreign recording's details and media. */
async function httpPass(ben: Caller, base: string, foreignId: string, own: Set<string>, tally: Tally): Promise<void> {
  const code = (r: { body: any }) => (r.body?.error?.code ? ` ${r.body.error.code}` : '');
  const list = await ben.request(base, 'GET', '/api/replays');
  if (list.status === 200) {
    const foreign = (list.body.replays as { id: string }[]).filter((r) => !own.has(r.id)).length;
    tally.rows += foreign;
    tally.seen.push(`http list 200 (${list.body.replays.length} rows, ${foreign} foreign)`);
  } else tally.seen.push(`http list ${list.status}${code(list)}`);
  const details = await ben.request(base, 'GET', `/api/recordings/${foreignId}`);
  if (details.status === 200) tally.rows++;
  tally.seen.push(`http foreign details ${details.status}${code(details)}`);
  const media = await ben.request(base, 'GET', `/api/recordings/${foreignId}/media`);
  if (media.status >= 200 && media.status < 300) tally.bytes += media.bytes;
  tally.seen.push(`http foreign media ${media.status}${code(media)}${media.status < 300 ? ` (${media.bytes} bytes)` : ''}`);
}

// ---------------------------------------------------------------------------------------------
// The database as the observer sees it

interface Violation {
  seq: number;
  action: string;
  occurredAt: number;
  feature: string | null;
  route: string | null;
}

interface AlertRow {
  id: string;
  raised_at: Date;
  rule: string;
  feature: string | null;
  action: string;
  event_seqs: string[];
  acknowledged_at: Date | null;
}

async function one<T>(db: DrillDatabase, text: string, values: unknown[] = []): Promise<T> {
  return (await db.observer.query(text, values)).rows[0] as T;
}

/** The database's clock minus ours (one host, so about 0; measured anyway, best of ten round trips). */
async function clockOffset(db: DrillDatabase): Promise<number> {
  let best = { rtt: Infinity, offset: 0 };
  for (let i = 0; i < 10; i++) {
    const before = Date.now();
    const r = await one<{ ms: string }>(db, 'select extract(epoch from clock_timestamp()) * 1000 as ms');
    const after = Date.now();
    if (after - before < best.rtt) best = { rtt: after - before, offset: Number(r.ms) - (before + after) / 2 };
  }
  return best.offset;
}

async function ownRecordings(db: DrillDatabase, patientId: string): Promise<{ ids: Set<string>; consultations: Set<string> }> {
  const { rows } = await db.observer.query<{ id: string; consultation_id: string }>(`select id, consultation_id from recordings where patient_id = $1`, [patientId]);
  return { ids: new Set(rows.map((r) => r.id)), consultations: new Set(rows.map((r) => r.consultation_id)) };
}

// ---------------------------------------------------------------------------------------------
// One case

interface Setup {
  db: DrillDatabase;
  benPage: Page;
  benContext: BrowserContext;
  benId: string;
  foreignId: string;
  dpo: Caller;
  offsetMs: number;
  setTally(t: Tally | undefined): void;
  setOwn(ids: Set<string>): void;
}

async function runCase(c: FaultCase, pair: Pair, s: Setup): Promise<DrillCase> {
  const { db } = s;
  const A = pair.a.baseUrl;
  const B = pair.b.baseUrl;
  const undoRls = c.rlsOpen ? await openReplayRls(db, SERVICE_ROLE) : null;
  const open: { watch?: FeatureWatch; stream?: AlertStream } = {};
  try {
    const own = await ownRecordings(db, s.benId);
    s.setOwn(own.ids);
    const { total } = await one<{ total: number }>(db, `select count(*)::int as total from recordings where status = 'ready'`);
    const reach = await visibleToPatient(db.serviceUrl, s.benId);
    const ownReady = await one<{ n: number }>(db, `select count(*)::int as n from recordings where status = 'ready' and patient_id = $1`, [s.benId]);
    const cookie = (await s.benContext.cookies()).find((k) => k.name === 'confidant_session');
    if (!cookie) throw new Error('drill: the other patient has no session cookie');
    const ben = new Caller(`confidant_session=${cookie.value}`);

    // Detection's state is clean: every feature on in both processes, no open alert, no counters.
    for (const base of [A, B]) {
      const status = (await (await fetch(`${base}/api/features/status`)).json()) as { features: { name: string; enabled: boolean }[] };
      const off = status.features.filter((f) => !f.enabled).map((f) => f.name);
      if (off.length) throw new Error(`drill: ${off.join(', ')} off at the start of case "${c.name}"`);
    }
    const start = await one<{ seq: string; at: Date }>(db, `select coalesce(max(seq), 0) as seq, clock_timestamp() as at from audit_events`);
    const seq0 = Number(start.seq);

    const watch = (open.watch = new FeatureWatch([A, B], POLL_GAP_MS));
    const stream = (open.stream = new AlertStream(A, s.dpo));
    await Promise.race([stream.opened, sleep(5_000).then(() => Promise.reject(new Error("drill: the DPO's alert stream did not open")))]);

    const tally = newTally();
    s.setTally(tally);
    let browserWords: string[];
    try {
      browserWords = await browserPass(s.benPage, B, s.foreignId, own.consultations);
      await httpPass(ben, A, s.foreignId, own.ids, tally);
      await Promise.allSettled(tally.pending);
    } finally {
      s.setTally(undefined);
    }

    // Detection has judged everything written so far; then each implicated feature, off in both
    // processes, and each alert on the DPO's stream, or give up on them after a few seconds.
    await until('detection to catch up with the audit chain', async () => {
      const r = await one<{ ok: boolean }>(db, `select (select last_seq from guard_cursor) >= (select coalesce(max(seq), 0) from audit_events) as ok`);
      return r.ok;
    }, 10_000, 20);
    const violations: Violation[] = (
      await db.observer.query<{ seq: string; action: string; occurred_at: Date; details: string | null }>(
        `select seq, action, occurred_at, details from audit_events where seq > $1 and action = any($2) order by seq`,
        [seq0, CRITICAL],
      )
    ).rows.map((r) => {
      const d = r.details ? (JSON.parse(r.details) as { feature?: string; route?: string }) : {};
      return { seq: Number(r.seq), action: r.action, occurredAt: r.occurred_at.getTime(), feature: d.feature ?? null, route: d.route ?? null };
    });
    const features = [...new Set(violations.map((v) => v.feature).filter((f): f is string => f !== null))];
    for (const f of features) await until(`${f} off in both processes`, async () => watch.offEverywhere(f), 5_000, 10).catch(() => null);
    const alerts = (await db.observer.query<AlertRow>(`select id, raised_at, rule, feature, action, event_seqs, acknowledged_at from guard_alerts where raised_at >= $1 order by raised_at`, [start.at])).rows;
    for (const a of alerts) await until(`alert ${a.id} on the DPO's stream`, async () => stream.received.has(a.id), 3_000, 10).catch(() => null);
    await watch.stop();
    await stream.close();
    const probes = await one<{ n: number }>(db, `select count(*)::int as n from guard_probe_hits where seq > $1`, [seq0]);

    // The measurements, on the database's clock.
    const local = (ms: number) => ms + s.offsetMs;
    const perFeature = features.map((f) => {
      const first = violations.find((v) => v.feature === f)!;
      const off = watch.offEverywhere(f);
      const alert = alerts.find((a) => a.feature === f && (a.rule === 'containment' || a.rule === 'integrity'));
      const pushed = alert ? stream.received.get(alert.id) : undefined;
      return {
        feature: f,
        first,
        events: violations.filter((v) => v.feature === f).length,
        containedMs: off ? local(off.at) - first.occurredAt : null,
        perProcess: off ? off.perProcess.map((p) => ({ from: local(p.since) - first.occurredAt, to: local(p.at) - first.occurredAt })) : null,
        alertMs: alert ? alert.raised_at.getTime() - first.occurredAt : null,
        pushedMs: pushed !== undefined ? local(pushed) - first.occurredAt : null,
      };
    });
    const worst = (xs: (number | null)[]) => (xs.length === 0 || xs.some((x) => x === null) ? null : Math.round(Math.max(...(xs as number[]))));
    const containedMs = worst(perFeature.map((p) => p.containedMs));
    const alertMs = worst(perFeature.map((p) => p.alertMs));
    const detected = alerts.some((a) => a.rule === 'containment' || a.rule === 'integrity');
    const foreignRows = tally.rows;
    const foreignBytes = tally.bytes;
    const scopeOn = !c.faults.includes('replay_scope_dropped');
    const stoppedBy =
      foreignRows > 0 || foreignBytes > 0
        ? 'none'
        : violations.some((v) => v.action === 'egress.blocked')
          ? 'egress'
          : violations.some((v) => v.action === 'rls.violation') || (!scopeOn && reach.recordings === ownReady.n && reach.listable === ownReady.n)
            ? 'rls'
            : scopeOn
              ? 'scope'
              : 'none';
    const contained = violations.length === 0 || (detected && containedMs !== null && containedMs <= CONTAIN_WITHIN_MS);
    const passed = foreignRows === 0 && foreignBytes === 0 && stoppedBy !== 'none' && contained;

    // The note: what was in place, what the patient saw, what each layer did.
    const layers = [
      `fault points in both processes: ${c.faults.join(', ') || 'none'}`,
      `row-level security: ${c.rlsOpen ? 'opened by the drill migration' : 'as migrated'} (his principal can read ${reach.recordings} of the ${total} ready recordings, ${reach.listable} through the list's join; ${ownReady.n} of them his)`,
    ];
    const happened = [...browserWords, ...tally.seen];
    let verdict: string;
    if (stoppedBy === 'egress') {
      const parts = perFeature.map(
        (p) =>
          `${p.feature}: ${p.events} egress refusal(s), the first on ${p.first.route} (audit seq ${p.first.seq}); ` +
          `switched off in A within ${span(p.perProcess?.[0])} ms and in B within ${span(p.perProcess?.[1])} ms of it; ` +
          `alert raised +${fmt(p.alertMs)} ms; on the DPO's stream (process A) +${fmt(p.pushedMs)} ms`,
      );
      verdict = `Stopped by the egress check and detected. ${parts.join('; ')}.`;
    } else if (stoppedBy === 'rls') {
      verdict = `Stopped by row-level security, silently: the database returned only his rows, which looks like an ordinary answer, so no containment signal exists to detect (detected=false).`;
    } else if (stoppedBy === 'scope') {
      verdict = `Stopped by the scope filter in the query, silently: nothing foreign was read, so nothing reached the later layers and there was nothing to detect (detected=false).`;
    } else {
      verdict = `NOT STOPPED: ${foreignRows} foreign row(s) and ${foreignBytes} foreign byte(s) reached him.`;
    }
    if (c.faults.includes('replay_owner_from_request') && stoppedBy === 'scope') verdict += ' The mislabelled owner would have fooled the egress check, but it only ever labelled his own rows.';
    if (c.faults.includes('egress_skipped') && stoppedBy === 'scope') verdict += ' With the egress check gone, the scope filter and row-level security were each still enough.';
    if (probes.n > 0) verdict += ` ${probes.n} not-found answer(s) on records that exist but are not his counted toward the probing rule (threshold 10; cleared after the case).`;
    const otherAlerts = alerts.filter((a) => a.rule !== 'containment' && a.rule !== 'integrity');
    if (otherAlerts.length) verdict += ` Other alerts: ${otherAlerts.map((a) => a.rule).join(', ')}.`;
    if (violations.length > 0 && !contained) verdict += ` NOT CONTAINED within ${CONTAIN_WITHIN_MS} ms in both processes.`;
    const cap = (t: string) => t.charAt(0).toUpperCase() + t.slice(1);
    const note = `${cap(layers.join('; '))}. ${cap(happened.join('; '))}. ${verdict}`;

    // Back to a clean state: the DPO acknowledges and switches back on; the migration is undone.
    await resetDetection(s, pair, alerts);
    return { name: c.name, description: c.description, foreignBytes, foreignRows, stoppedBy, detected, containedMs, alertMs, passed, note };
  } finally {
    // Nothing left open on the processes (an open alert stream would hold up their shutdown).
    await open.watch?.stop();
    await open.stream?.close();
    await undoRls?.();
  }
}

const fmt = (n: number | null | undefined) => (n === null || n === undefined ? '?' : String(Math.round(n)));
const signed = (n: number) => `${n >= 0 ? '+' : ''}${Math.round(n)}`;
const span = (b: { from: number; to: number } | undefined) => (b ? `(${signed(b.from)}, ${signed(b.to)}]` : '(?)');

/** Only the DPO switches a feature back on after an automatic kill: through the API, as a DPO signed in. */
async function resetDetection(s: Setup, pair: Pair, alerts: AlertRow[]): Promise<void> {
  const A = pair.a.baseUrl;
  for (const a of alerts) {
    if (a.acknowledged_at) continue;
    const r = await s.dpo.request(A, 'POST', `/api/guard/alerts/${a.id}/acknowledge`);
    if (r.status !== 200) throw new Error(`drill: the DPO could not acknowledge alert ${a.id}: ${r.status} ${JSON.stringify(r.body)}`);
  }
  const list = await s.dpo.request(A, 'GET', '/api/features');
  for (const f of list.body.features as { name: string; enabled: boolean }[]) {
    if (f.enabled) continue;
    const r = await s.dpo.request(A, 'PUT', `/api/features/${f.name}`, { enabled: true, reason: 'breach drill: case over, its fault removed' });
    if (r.status !== 200) throw new Error(`drill: the DPO could not switch ${f.name} back on: ${r.status} ${JSON.stringify(r.body)}`);
  }
  await until('every feature on again in both processes', async () => {
    for (const base of [A, pair.b.baseUrl]) {
      const status = (await (await fetch(`${base}/api/features/status`)).json()) as { features: { enabled: boolean }[] };
      if (status.features.some((f) => !f.enabled)) return false;
    }
    return true;
  }, 5_000, 20);
  // The probing rule's counters and any throttle: detection-internal state that no API resets
  // (system-only under RLS), cleared through the observer's connection.
  await s.db.observer.query('delete from guard_probe_hits');
  await s.db.observer.query('delete from guard_throttles');
}

// ---------------------------------------------------------------------------------------------
// The run

/** DRILL_CASES=1,5 runs only those cases (by their number); all of them by default. */
function selectedCases(): FaultCase[] {
  const wanted = (process.env.DRILL_CASES ?? '').split(',').map((n) => n.trim()).filter(Boolean);
  if (wanted.length === 0) return CASES;
  const picked = CASES.filter((c) => wanted.includes(c.name.split(' ')[0]!));
  if (picked.length !== wanted.length) throw new Error(`DRILL_CASES: known cases are ${CASES.map((c) => c.name.split(' ')[0]).join(', ')}`);
  return picked;
}

function printReport(report: Report, ms: number) {
  const head = ['case', 'foreign rows', 'foreign bytes', 'stopped by', 'detected', 'contained (ms)', 'alert (ms)', 'passed'];
  const rows = report.cases.map((c) => [c.name, String(c.foreignRows), String(c.foreignBytes), c.stoppedBy, c.detected ? 'yes' : 'no', fmt(c.containedMs).replace('?', '-'), fmt(c.alertMs).replace('?', '-'), c.passed ? 'yes' : 'NO']);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  console.log(`\nBreach drill, ${report.ranAt}: ${report.processes} processes on ${report.database}`);
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
  console.log('');
  for (const c of report.cases) console.log(`${c.name}: ${c.description}\n  ${c.note}\n`);
  console.log(
    `Contained: from the first violating audit event (audit_events.occurred_at) to the later of the two processes' first answer of GET /api/features/status ` +
      `(each process's own in-memory switches, what its routes check) saying the feature is off; each process is asked back to back, ${POLL_GAP_MS} ms apart, so this is an upper bound ` +
      `and the note gives the interval each switch happened in. Alert: guard_alerts.raised_at minus the same event's occurred_at; the note adds when the DPO's alert stream on process A received it. ` +
      `All on the database's clock (the drill's clock corrected by the measured offset).`,
  );
  console.log(`\n${report.passed ? 'PASSED' : 'FAILED'}: the drill took ${(ms / 1000).toFixed(1)} s.`);
}

async function main(): Promise<number> {
  const cleanup: (() => Promise<unknown>)[] = [];
  let pair: Pair | undefined;
  let browser: Browser | undefined;
  const done = async () => {
    await stopPair(pair).catch((e: Error) => console.warn(`drill: stopping the processes: ${e.message}`));
    pair = undefined;
    for (const fn of cleanup.splice(0).reverse()) await fn().catch((e: Error) => console.warn(`drill: cleanup: ${e.message}`));
  };
  const onSignal = (sig: string) => {
    console.error(`drill: ${sig}: cleaning up`);
    void done().finally(() => process.exit(130));
  };
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  const watchdog = setTimeout(() => {
    console.error('drill: still running after 10 minutes; giving up');
    void done().finally(() => process.exit(1));
  }, 10 * 60_000);
  watchdog.unref();

  try {
    const db = await createDrillDatabase();
    cleanup.push(() => (process.env.DRILL_KEEP_DATABASE === '1' ? (log(`database ${db.name} kept`), db.observer.end()) : db.drop()));
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'confidant-drill-'));
    cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
    const version = (await one<{ v: string }>(db, `select current_setting('server_version') as v`)).v;
    log(`database ${db.name} (PostgreSQL ${version}) migrated by the owner role`);

    [pair, browser] = await Promise.all([startPair(db, dataDir, []), launchBrowser({ extraArgs: ['--autoplay-policy=no-user-gesture-required'] })]);
    cleanup.push(() => browser!.close());
    log(`two processes up: A ${pair.a.baseUrl}, B ${pair.b.baseUrl}`);

    const watch = new PageWatch();
    const [patelContext, chloeContext] = await Promise.all([watch.context(browser, pair.a.baseUrl), watch.context(browser, pair.a.baseUrl)]);
    const benContext = await watch.context(browser, pair.b.baseUrl);
    const [patel, chloe, benPage] = await Promise.all([patelContext.newPage(), chloeContext.newPage(), benContext.newPage()]);
    const [, , , dpo] = await Promise.all([
      signInStaff(patel, PATEL.email, '/clinician'),
      signInPatient(chloe, CHLOE.email),
      signInPatient(benPage, BEN.email),
      Caller.signIn(pair.a.baseUrl, DPO),
    ]);
    log('GP and patient signed in on A, the other patient on B, the DPO (API) on A');

    const consultationId = await holdRecordedConsultation(chloe, patel, log);
    const recording = await until(
      'the recording to be finalised',
      async () => (await db.observer.query<{ id: string; plaintext_size: string; video_consented: boolean }>(`select id, plaintext_size, video_consented from recordings where consultation_id = $1 and status = 'ready'`, [consultationId])).rows[0],
      60_000,
      250,
    );
    log(`recording ${recording.id} ready: ${recording.plaintext_size} bytes, ${recording.video_consented ? 'video' : 'sound only'}`);
    await Promise.all([patelContext.close(), chloeContext.close()]);

    const benId = (await one<{ id: string }>(db, `select id from accounts where email = $1`, [BEN.email])).id;
    let tally: Tally | undefined;
    let ownIds = new Set<string>();
    accountBrowser(benPage, () => tally, () => ownIds);
    const setup: Setup = {
      db,
      benPage,
      benContext,
      benId,
      foreignId: recording.id,
      dpo,
      offsetMs: await clockOffset(db),
      setTally: (t) => (tally = t),
      setOwn: (ids) => (ownIds = ids),
    };
    log(`clock offset to the database: ${setup.offsetMs.toFixed(1)} ms`);

    const cases: DrillCase[] = [];
    for (const c of selectedCases()) {
      await stopPair(pair);
      pair = undefined;
      pair = await startPair(db, dataDir, c.faults);
      log(`case "${c.name}": processes restarted with ${c.faults.join(', ') || 'no fault points'}${c.rlsOpen ? ', the replay tables opened' : ''}`);
      const result = await runCase(c, pair, setup);
      cases.push(result);
      log(`case "${c.name}": ${result.passed ? 'passed' : 'FAILED'} (stopped by ${result.stoppedBy}, detected ${result.detected}, contained ${fmt(result.containedMs)} ms)`);
    }
    if (watch.pageErrors.length || watch.cspViolations.length) {
      console.warn(`drill: the browser reported ${[...watch.pageErrors, ...watch.cspViolations].join('\n  ')}`);
    }

    const report = DrillReport.parse({
      ranAt: new Date(t0).toISOString(),
      passed: cases.every((c) => c.passed),
      database: `PostgreSQL ${version} (a fresh database, dropped afterwards)`,
      processes: 2,
      cases,
    } satisfies Report);
    const file = drillReportFile(path.resolve(process.env.DATA_DIR ?? './data'));
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(`${file}.tmp`, `${JSON.stringify(report, null, 2)}\n`);
    await rename(`${file}.tmp`, file);
    await done();
    printReport(report, Date.now() - t0);
    console.log(`Report: ${file}`);
    return report.passed ? 0 : 1;
  } catch (err) {
    console.error(`drill: ${(err as Error).stack ?? err}`);
    if (pair) for (const [n, p] of [['A', pair.a], ['B', pair.b]] as const) console.error(`--- process ${n} output (last 3000 characters):\n${p.output().slice(-3000)}`);
    await done();
    return 1;
  } finally {
    clearTimeout(watchdog);
  }
}

process.exit(await main());
