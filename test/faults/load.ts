import { randomBytes } from 'node:crypto';

/**
 * A load of patients booking, reading and cancelling over real HTTP, that remembers every
 * request and classifies every write by what the service told the patient:
 *   acknowledged  2xx: it happened, and must be in the database afterwards;
 *   refused       4xx (slot_taken …): it did not happen;
 *   abandoned     503 with any code but outcome_unknown: it did not happen, and never will;
 *   unknown       503 outcome_unknown, another 5xx or no answer at all: the patient retries with
 *                 the same Idempotency-Key until an answer settles it (recorded as the resolution).
 */

export type RequestKind = 'slots' | 'list' | 'book' | 'cancel';

export interface RequestRecord {
  patient: number;
  kind: RequestKind;
  key?: string;
  /** 0 for the first try of a write; n for the n-th retry of the same key. */
  attempt: number;
  /** 0: no HTTP answer (connection refused or reset, or the client's own timeout). */
  status: number;
  code?: string;
  retryAfter?: string;
  error?: string;
  startedAt: number;
  endedAt: number;
  latencyMs: number;
}

export type WriteOutcome = 'acknowledged' | 'refused' | 'abandoned' | 'unknown';

export interface WriteRecord {
  patient: number;
  kind: 'book' | 'cancel';
  key: string;
  /** What was sent (a retry with the same key sends exactly this again). */
  request: { path: string; body: unknown };
  /** For a booking: the one created (from the answer); for a cancel: the one it cancels. */
  appointmentId?: string;
  slot?: { clinicianId: string; startsAt: string };
  startedAt: number;
  first: { status: number; code?: string; body?: unknown };
  outcome: WriteOutcome;
  /** How an unknown write was settled by retrying the same key (absent: never settled). */
  resolution?: { status: number; code?: string; attempts: number; at: number };
  /** Did it commit? undefined while (or because) nobody could tell. */
  committed: boolean | undefined;
}

export interface Patient {
  n: number;
  id: string;
  email: string;
  cookie: string;
  csrf: string;
  /** Appointments this patient holds as far as it was told (booked, not cancelled). */
  held: Map<string, { clinicianId: string; startsAt: string }>;
}

export interface LoadOptions {
  /** The service's base URL, read before every request (the server may be replaced). */
  baseUrl: () => string;
  patients: Patient[];
  /** Cancel when holding this many; below it, cancel with probability cancelRate. */
  holdCap?: number;
  cancelRate?: number;
  thinkMs?: number;
  /** The client's own limit on one request: a safety net only; latency is judged separately. */
  clientTimeoutMs?: number;
  /** How long one patient keeps retrying an unknown write before giving up on it. */
  resolveBudgetMs?: number;
}

const PASSWORD = 'tidal-granite-orchard-55';

export function newIdempotencyKey(): string {
  return `fault-${randomBytes(12).toString('hex')}`;
}

function sessionCookie(res: Response): string | undefined {
  for (const c of res.headers.getSetCookie()) {
    const pair = c.split(';')[0]!;
    if (pair.startsWith('confidant_session=')) return pair;
  }
  return undefined;
}

/** Registers k patients through the API (each signed in, with its cookie and CSRF token). */
export async function registerPatients(baseUrl: string, k: number, tag = randomBytes(3).toString('hex')): Promise<Patient[]> {
  return Promise.all(
    Array.from({ length: k }, async (_, n) => {
      const email = `fault.${tag}.${n}@example.test`;
      const res = await fetch(`${baseUrl}/api/auth/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': 'none' },
        body: JSON.stringify({ givenName: 'Fault', familyName: `Patient${n}`, dateOfBirth: '1984-03-09', email, password: PASSWORD }),
      });
      const body = (await res.json()) as { csrfToken?: string };
      const cookie = sessionCookie(res);
      if (res.status !== 201 || !cookie || !body.csrfToken) throw new Error(`registering ${email}: ${res.status} ${JSON.stringify(body)}`);
      const me = (await (await fetch(`${baseUrl}/api/session`, { headers: { cookie } })).json()) as { account: { id: string } };
      return { n, id: me.account.id, email, cookie, csrf: body.csrfToken, held: new Map() };
    }),
  );
}

/** Tomorrow in the clinic's zone: slots from then on cannot start (and become uncancellable) mid-test. */
function clinicTomorrow(timeZone = 'Europe/London'): string {
  return new Intl.DateTimeFormat('en-CA', { timeZone }).format(new Date(Date.now() + 86_400_000));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Load {
  readonly requests: RequestRecord[] = [];
  readonly writes: WriteRecord[] = [];
  private stopped = false;
  private pausing = false;
  private parked = 0;
  private gate: Promise<void> = Promise.resolve();
  private openGate: () => void = () => {};
  private parkedChanged: () => void = () => {};
  private workers: Promise<void>[] = [];
  private readonly o: Required<LoadOptions>;

  constructor(opts: LoadOptions) {
    this.o = { holdCap: 8, cancelRate: 0.25, thinkMs: 20, clientTimeoutMs: 30_000, resolveBudgetMs: 30_000, ...opts };
  }

  start(): void {
    this.workers = this.o.patients.map((p) => this.work(p));
  }

  /** Lets every patient finish what it is doing (unknown writes included), then holds them. */
  async pause(): Promise<void> {
    if (this.pausing) return;
    this.gate = new Promise((r) => (this.openGate = r));
    this.pausing = true;
    while (this.parked < this.o.patients.length && !this.stopped) {
      await new Promise<void>((r) => {
        this.parkedChanged = r;
        setTimeout(r, 50);
      });
    }
  }

  resume(): void {
    this.pausing = false;
    this.openGate();
  }

  /** Stops for good: unknown writes still being retried are left unresolved. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.resume();
    await Promise.all(this.workers);
  }

  private async work(p: Patient): Promise<void> {
    while (!this.stopped) {
      if (this.pausing) {
        this.parked++;
        this.parkedChanged();
        await this.gate;
        this.parked--;
        continue;
      }
      const slots = await this.call(p, 'slots', 'GET', `/api/slots?from=${clinicTomorrow()}&days=13&limit=200`);
      const offered = (slots.body as { slots?: { clinicianId: string; startsAt: string }[] } | undefined)?.slots ?? [];
      if (slots.status === 200 && offered.length > 0) {
        const slot = offered[Math.floor(Math.random() * offered.length)]!;
        await this.write(p, 'book', '/api/appointments', {
          clinicianId: slot.clinicianId,
          startsAt: slot.startsAt,
          mode: Math.random() < 0.5 ? 'audio' : 'video',
          reason: 'Fault suite: booking under load',
        }, { clinicianId: slot.clinicianId, startsAt: slot.startsAt });
      }
      await this.call(p, 'list', 'GET', '/api/appointments');
      if (p.held.size > 0 && (p.held.size >= this.o.holdCap || Math.random() < this.o.cancelRate)) {
        const ids = [...p.held.keys()];
        const id = ids[Math.floor(Math.random() * ids.length)]!;
        await this.write(p, 'cancel', `/api/appointments/${id}/cancel`, {}, undefined, id);
      }
      await sleep(this.o.thinkMs);
    }
  }

  private async call(
    p: Patient,
    kind: RequestKind,
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    key?: string,
    attempt = 0,
  ): Promise<{ status: number; code?: string; body?: unknown }> {
    const startedAt = Date.now();
    const rec: RequestRecord = { patient: p.n, kind, attempt, status: 0, startedAt, endedAt: 0, latencyMs: 0, ...(key ? { key } : {}) };
    let parsed: unknown;
    try {
      const res = await fetch(`${this.o.baseUrl()}${path}`, {
        method,
        headers: {
          cookie: p.cookie,
          ...(method === 'POST' ? { 'content-type': 'application/json', 'x-csrf-token': p.csrf } : {}),
          ...(key ? { 'idempotency-key': key } : {}),
        },
        ...(method === 'POST' ? { body: JSON.stringify(body ?? {}) } : {}),
        signal: AbortSignal.timeout(this.o.clientTimeoutMs),
      });
      const text = await res.text();
      rec.status = res.status;
      const fresh = sessionCookie(res);
      if (fresh) p.cookie = fresh;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        parsed = text;
      }
      const code = (parsed as { error?: { code?: string } } | undefined)?.error?.code;
      if (code) rec.code = code;
      const retryAfter = res.headers.get('retry-after');
      if (retryAfter !== null) rec.retryAfter = retryAfter;
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      rec.error = e.name === 'TimeoutError' ? 'client_timeout' : (e.cause?.code ?? e.name);
    }
    rec.endedAt = Date.now();
    rec.latencyMs = rec.endedAt - startedAt;
    this.requests.push(rec);
    if (rec.status === 0 || rec.status >= 500) await sleep(150 + Math.random() * 150);
    return { status: rec.status, ...(rec.code ? { code: rec.code } : {}), body: parsed };
  }

  private async write(
    p: Patient,
    kind: 'book' | 'cancel',
    path: string,
    body: unknown,
    slot?: { clinicianId: string; startsAt: string },
    appointmentId?: string,
  ): Promise<void> {
    const key = newIdempotencyKey();
    const startedAt = Date.now();
    const first = await this.call(p, kind, 'POST', path, body, key);
    const w: WriteRecord = {
      patient: p.n,
      kind,
      key,
      request: { path, body },
      startedAt,
      first,
      outcome: classify(first.status, first.code),
      committed: undefined,
      ...(slot ? { slot } : {}),
      ...(appointmentId ? { appointmentId } : {}),
    };
    this.writes.push(w);
    let settled: { status: number; code?: string; body?: unknown } | undefined =
      w.outcome === 'unknown' ? undefined : first;
    if (w.outcome === 'unknown') {
      const until = Date.now() + this.o.resolveBudgetMs;
      for (let attempt = 1; !this.stopped && Date.now() < until; attempt++) {
        const again = await this.call(p, kind, 'POST', path, body, key, attempt);
        if (again.status >= 200 && again.status < 500) {
          w.resolution = { status: again.status, ...(again.code ? { code: again.code } : {}), attempts: attempt, at: Date.now() };
          settled = again;
          break;
        }
        await sleep(100);
      }
    }
    if (w.outcome === 'abandoned') w.committed = false;
    else if (settled) w.committed = settled.status >= 200 && settled.status < 300;
    if (w.committed && kind === 'book') {
      const id = (settled!.body as { id?: string } | undefined)?.id;
      if (id) {
        w.appointmentId = id;
        p.held.set(id, slot!);
      }
    }
    if (kind === 'cancel' && (w.committed !== false || w.outcome === 'refused')) p.held.delete(appointmentId!);
  }
}

export function classify(status: number, code: string | undefined): WriteOutcome {
  if (status >= 200 && status < 300) return 'acknowledged';
  if (status >= 400 && status < 500) return 'refused';
  if (status === 503 && code !== undefined && code !== 'outcome_unknown') return 'abandoned';
  return 'unknown';
}

/** Codes a database failure may answer with (503 + Retry-After), per the contract. */
export const STABLE_503_CODES = ['database_unavailable', 'deadline_exceeded', 'outcome_unknown', 'storage_full'];
/** Refusals the load can legitimately meet. */
export const EXPECTED_REFUSALS: Record<RequestKind, string[]> = {
  slots: [],
  list: [],
  book: ['slot_taken', 'too_many_bookings'],
  cancel: [],
};

/** A request the contract does not allow (anything but 2xx, an expected refusal, or a proper 503). */
export function disallowed(r: RequestRecord): string | undefined {
  if (r.status >= 200 && r.status < 300) return undefined;
  if (r.status === 0) return `no answer (${r.error})`;
  if (r.status === 503) {
    if (!r.code || !STABLE_503_CODES.includes(r.code)) return `503 without a stable code (${r.code ?? 'none'})`;
    if (r.retryAfter === undefined) return `503 ${r.code} without Retry-After`;
    return undefined;
  }
  if (r.status >= 400 && r.status < 500 && r.code && EXPECTED_REFUSALS[r.kind].includes(r.code)) return undefined;
  return `${r.status} ${r.code ?? ''}`.trim();
}

export interface LoadSummary {
  requests: number;
  /** "kind status code" → count, e.g. "book 503 deadline_exceeded". */
  byAnswer: Record<string, number>;
  /** "status code" → count, all kinds together. */
  byStatus: Record<string, number>;
  writes: Record<WriteOutcome, number>;
  unresolved: number;
  maxLatencyMs: number;
  maxLatencyOf: string;
  p99LatencyMs: number;
  disallowed: { what: string; count: number; example: RequestRecord }[];
}

export function summarize(requests: RequestRecord[], writes: WriteRecord[]): LoadSummary {
  const byAnswer: Record<string, number> = {};
  const byStatus: Record<string, number> = {};
  const bad = new Map<string, { what: string; count: number; example: RequestRecord }>();
  let max: RequestRecord | undefined;
  for (const r of requests) {
    const answer = r.status === 0 ? `no-answer ${r.error}` : `${r.status}${r.code ? ` ${r.code}` : ''}`;
    byAnswer[`${r.kind} ${answer}`] = (byAnswer[`${r.kind} ${answer}`] ?? 0) + 1;
    byStatus[answer] = (byStatus[answer] ?? 0) + 1;
    if (!max || r.latencyMs > max.latencyMs) max = r;
    const what = disallowed(r);
    if (what) {
      const k = `${r.kind}: ${what}`;
      const seen = bad.get(k);
      if (seen) seen.count++;
      else bad.set(k, { what: k, count: 1, example: r });
    }
  }
  const lat = requests.map((r) => r.latencyMs).sort((a, b) => a - b);
  const counts: Record<WriteOutcome, number> = { acknowledged: 0, refused: 0, abandoned: 0, unknown: 0 };
  for (const w of writes) counts[w.outcome]++;
  return {
    requests: requests.length,
    byAnswer,
    byStatus,
    writes: counts,
    unresolved: writes.filter((w) => w.committed === undefined).length,
    maxLatencyMs: max?.latencyMs ?? 0,
    maxLatencyOf: max ? `${max.kind} ${max.status}${max.code ? ` ${max.code}` : ''}${max.error ? ` ${max.error}` : ''}` : '',
    p99LatencyMs: lat.length ? lat[Math.min(lat.length - 1, Math.floor(lat.length * 0.99))]! : 0,
    disallowed: [...bad.values()],
  };
}

export interface AppointmentRow {
  id: string;
  patient_id: string;
  clinician_id: string;
  starts_at: Date;
  status: string;
}

/**
 * Compares what the patients were told with what the database holds:
 *  - every committed booking exists, is the patient's, at the slot asked for;
 *  - every appointment of these patients is one of those (or is explained by a write nobody
 *    could settle): nothing abandoned, refused or unknown-but-not-committed was booked;
 *  - an appointment is cancelled exactly when a cancel of it committed;
 *  - when keyRows is given (the keys present in idempotency_keys): a write's key is there
 *    exactly when it committed.
 */
export function verifyWrites(
  patients: Patient[],
  writes: WriteRecord[],
  rows: AppointmentRow[],
  keyRows?: Set<string>,
): string[] {
  const problems: string[] = [];
  const patientId = new Map(patients.map((p) => [p.n, p.id]));
  const byId = new Map(rows.map((r) => [r.id, r]));
  const booked = new Map<string, WriteRecord>();
  const unsettledSlots = new Set<string>();
  const slotKey = (patient: string, clinician: string, startsAt: string | Date) =>
    `${patient}|${clinician}|${new Date(startsAt).toISOString()}`;
  for (const w of writes.filter((x) => x.kind === 'book')) {
    if (w.committed === true) {
      if (!w.appointmentId) {
        problems.push(`booking ${w.key}: committed but its answer carried no appointment id`);
        continue;
      }
      booked.set(w.appointmentId, w);
      const row = byId.get(w.appointmentId);
      if (!row) problems.push(`booking ${w.key} (${w.outcome}${w.resolution ? `, resolved ${w.resolution.status}` : ''}): appointment ${w.appointmentId} is missing`);
      else if (row.patient_id !== patientId.get(w.patient) || slotKey(row.patient_id, row.clinician_id, row.starts_at) !== slotKey(patientId.get(w.patient)!, w.slot!.clinicianId, w.slot!.startsAt)) {
        problems.push(`booking ${w.key}: appointment ${w.appointmentId} is not the patient's booking at ${w.slot!.startsAt}`);
      }
    } else if (w.committed === undefined) {
      unsettledSlots.add(slotKey(patientId.get(w.patient)!, w.slot!.clinicianId, w.slot!.startsAt));
    }
  }
  for (const row of rows) {
    if (booked.has(row.id)) continue;
    if (unsettledSlots.has(slotKey(row.patient_id, row.clinician_id, row.starts_at))) continue;
    const told = writes.filter(
      (w) => w.kind === 'book' && w.slot && slotKey(patientId.get(w.patient)!, w.slot.clinicianId, w.slot.startsAt) === slotKey(row.patient_id, row.clinician_id, row.starts_at),
    );
    problems.push(
      `appointment ${row.id} (${row.status}) exists but no booking of it was acknowledged; the patient was told: ${told.map((w) => `${w.key} ${w.first.status} ${w.first.code ?? ''} → ${w.outcome}`).join(', ') || 'nothing'}`,
    );
  }
  for (const [id] of booked) {
    const row = byId.get(id);
    if (!row) continue;
    const cancels = writes.filter((w) => w.kind === 'cancel' && w.appointmentId === id);
    const done = cancels.some((w) => w.committed === true);
    const maybe = cancels.some((w) => w.committed === undefined);
    if (done && row.status !== 'cancelled') problems.push(`appointment ${id}: its cancel was acknowledged but it is ${row.status}`);
    if (!done && !maybe && row.status !== 'booked') {
      problems.push(
        `appointment ${id} is ${row.status} but no cancel of it committed (told: ${cancels.map((w) => `${w.first.status} ${w.first.code ?? ''} → ${w.outcome}`).join(', ') || 'none'})`,
      );
    }
  }
  if (keyRows) {
    for (const w of writes) {
      if (w.committed === true && !keyRows.has(w.key)) problems.push(`${w.kind} ${w.key} committed (${w.outcome}) but its key is not in idempotency_keys`);
      if (w.committed === false && keyRows.has(w.key)) {
        problems.push(`${w.kind} ${w.key} was ${w.outcome} (${w.first.status} ${w.first.code ?? ''}) but its key is in idempotency_keys`);
      }
    }
  }
  return problems;
}
