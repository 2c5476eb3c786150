import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { insertSession } from '../../src/modules/identity/identity-repo';
import { csrfTokenFor, newSessionToken } from '../../src/modules/identity/session-tokens';
import { sql } from '../../src/db';
import { finaliseWebm, WebmError, type FinaliseOptions } from '../../src/modules/recordings/webm';
import type { Reply, TestClient, TestService } from '../harness';
import { CLIP, chunksOf } from './support';

/**
 * Support for the model-based test of consultations and recordings (model.test.ts): accounts
 * minted cheaply, the global ledger of who owns what, and the expected finalised recordings.
 */

export type Kind = 'patient' | 'clinician';

export interface Actor {
  kind: Kind;
  id: string;
  /** P0, P1, C0 … within its cast, with the cast's tag: for failure messages. */
  label: string;
  client: TestClient;
}

/** The appointment grid of the service under test (SLOT_MINUTES). */
export const SLOT_MINUTES = 10;
const SLOT_MS = SLOT_MINUTES * 60_000;

/**
 * A set of patients and clinicians used by some consecutive sequences of one lane. Each lane has
 * its own cast, so lanes never touch each other's objects (but they do see each other's in the
 * global ledger: anything of another cast a caller is shown is a leak).
 */
export interface Cast<Appt = unknown, Cons = unknown, Rec = unknown> {
  tag: string;
  patients: Actor[];
  clinicians: Actor[];
  all: Actor[];
  /** The next slot start (ms) this cast books: every booking of the cast takes a slot of its own. */
  nextSlot: number;
  /** Everything this cast's sequences created, with the state the model left it in. */
  appts: Appt[];
  cons: Cons[];
  recs: Rec[];
}

let casts = 0;

/**
 * Casts of patients and clinicians created directly, `count` at a time in one transaction, each
 * account with a signed-in session and each clinician working around the clock — what
 * test/fixtures.ts does through the API, without the deliberately slow password hash, sign-in and
 * MFA steps (tested elsewhere): here a whole cast costs a few inserts.
 */
export async function mintCasts<A, C, R>(service: TestService, count: number, patients: number, clinicians: number): Promise<Cast<A, C, R>[]> {
  const plan: { kind: Kind; label: string }[] = [
    ...Array.from({ length: patients }, (_, i) => ({ kind: 'patient' as const, label: `P${i}` })),
    ...Array.from({ length: clinicians }, (_, i) => ({ kind: 'clinician' as const, label: `C${i}` })),
  ];
  const batch = Array.from({ length: count }, () => ({
    tag: `m${(casts++).toString(36)}${randomBytes(3).toString('hex')}`,
    actors: plan.map((p) => ({ ...p, id: randomUUID(), ...newSessionToken() })),
  }));
  const accounts = batch.flatMap((c) => c.actors.map((a) => ({ ...a, tag: c.tag })));
  const expires = new Date(Date.now() + service.deps.sessions.policy.absoluteMs);
  const request = { requestId: 'model-casts', clientIp: null, userAgent: null };
  await service.deps.scopes.system('test: model-based casts', request, async (scope) => {
    await scope.tx
      .insertInto('accounts')
      .values(
        accounts.map((a) => ({
          id: a.id,
          kind: a.kind,
          email: `model.${a.tag}.${a.label}@example.test`.toLowerCase(),
          display_name: a.kind === 'clinician' ? `Dr ${a.label} ${a.tag}` : a.label,
          mfa_required: a.kind === 'clinician',
          mfa_enabled_at: a.kind === 'clinician' ? new Date() : null,
        })),
      )
      .execute();
    const pts = accounts.filter((a) => a.kind === 'patient');
    if (pts.length > 0) {
      await scope.tx
        .insertInto('patient_profiles')
        .values(pts.map((a) => ({ account_id: a.id, given_name: a.label, family_name: a.tag, date_of_birth: '1990-05-17', nhs_number: null })))
        .execute();
    }
    for (const a of accounts) {
      await insertSession(scope.tx, {
        id: randomUUID(),
        tokenHash: a.hash,
        accountId: a.id,
        stage: 'full',
        absoluteExpiresAt: expires,
        clientIp: null,
        userAgent: null,
      });
    }
    const gps = accounts.filter((a) => a.kind === 'clinician');
    if (gps.length > 0) {
      await scope.tx
        .insertInto('availability_rules')
        .values(gps.flatMap((g) => [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ clinician_id: g.id, weekday, start_time: '00:00', end_time: '24:00' }))))
        .execute();
    }
  });
  return batch.map((c) => {
    const actors: Actor[] = c.actors.map((a) => {
      const client = service.client();
      client.cookie = `confidant_session=${a.token}`;
      client.csrf = csrfTokenFor(a.token);
      return { kind: a.kind, id: a.id, label: `${a.label}@${c.tag}`, client };
    });
    return {
      tag: c.tag,
      patients: actors.filter((a) => a.kind === 'patient'),
      clinicians: actors.filter((a) => a.kind === 'clinician'),
      all: actors,
      nextSlot: 0,
      appts: [],
      cons: [],
      recs: [],
    };
  });
}

/** Takes the cast's next slot: a time neither its clinicians nor its patients hold. */
export function takeSlot(cast: Cast): string {
  // A little ahead of now, on the slot grid (the clinic's zone is a whole number of hours off UTC).
  const soonest = Math.ceil((Date.now() + 2 * SLOT_MS) / SLOT_MS) * SLOT_MS;
  const at = Math.max(cast.nextSlot, soonest);
  cast.nextSlot = at + SLOT_MS;
  return new Date(at).toISOString();
}

/** How far ahead the cast's next slot is; the service lets consultations be joined up to a day early. */
export function slotHorizonMs(cast: Cast): number {
  return Math.max(0, cast.nextSlot - Date.now());
}

/**
 * Who owns what, across every sequence and lane of the test file: every appointment,
 * consultation, mode request and recording ever created, and every patient account, with the
 * accounts that may see it. A response naming anything here that the caller does not own is a
 * leak, whatever the model of the current sequence says.
 */
export class Ledger {
  private readonly entries = new Map<string, { what: string; owners: readonly string[] }>();

  add(id: string, what: string, owners: readonly string[]) {
    const known = this.entries.get(id);
    if (known) throw new Error(`the server gave a new ${what} the id of an existing ${known.what} (${id})`);
    this.entries.set(id, { what, owners });
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Every known identifier in the body must be one the caller may see. */
  assertNoForeign(body: unknown, caller: Actor, where: string) {
    if (body === undefined || body === null) return;
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    for (const id of text.match(UUID_RE) ?? []) {
      const entry = this.entries.get(id.toLowerCase());
      if (entry && !entry.owners.includes(caller.id)) {
        throw new Error(`LEAK: ${where}: ${caller.label} was shown ${entry.what} ${id}, which is not theirs. Body: ${text.slice(0, 2000)}`);
      }
    }
  }
}
const UUID_RE = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

/** The two clips a recording may be made of: audio and video, and audio only. */
export const CLIPS: readonly Buffer[] = [CLIP, readFileSync(path.resolve(import.meta.dirname, '../../src/demo/assets/demo-consultation-audio.webm'))];

/** One chunk as uploaded: its bytes and a name for it (the memo key of what it finalises to). */
export interface Chunk {
  key: string;
  bytes: Buffer;
}

const planned = new Map<string, Chunk[]>();
/** The clip cut into `parts` chunks (chunksOf may make fewer when the sizes round up). */
export function plannedChunks(clip: number, parts: number): Chunk[] {
  const key = `${clip}/${parts}`;
  let out = planned.get(key);
  if (!out) {
    out = chunksOf(CLIPS[clip]!, parts).map((bytes, seq) => ({ key: `${key}#${seq}`, bytes }));
    planned.set(key, out);
  }
  return out;
}

/** Chunk `seq` of a recording of `clip` in `parts`; past the end of the clip, a few stray bytes. */
export function chunkFor(clip: number, parts: number, seq: number): Chunk {
  return plannedChunks(clip, parts)[seq] ?? strayChunk(seq);
}

const strays = new Map<number, Chunk>();
/** Bytes a browser might send after the clip (MediaRecorder's last, tiny chunk): the same for a given seq. */
export function strayChunk(seq: number): Chunk {
  let c = strays.get(seq);
  if (!c) {
    c = { key: `stray#${seq}`, bytes: Buffer.alloc(24 + (seq % 7), seq + 1) };
    strays.set(seq, c);
  }
  return c;
}

/** Different bytes under a number already taken: a chunk that must be refused. */
export function conflictingChunk(seq: number): Chunk {
  return { key: `conflict#${seq}`, bytes: Buffer.from(`not chunk ${seq}: different bytes`) };
}

export type Final = { ok: true; data: Buffer; durationMs: number; hasVideo: boolean } | { ok: false };
const finals = new Map<string, Final>();

export type KeepVideo = NonNullable<FinaliseOptions['keepVideo']>;
/**
 * Which video of a recording the server may keep (issue 15): none (consent to video was never in
 * force while it ran), all (in force from before it started until it was finalised), or, where
 * consent changed while it ran, what a predicate computed from the stored times says.
 */
export type VideoKept = 'none' | 'all' | KeepVideo;

/**
 * What the service must make of these chunks: exactly finaliseWebm of their bytes, less the video
 * that may not be kept, or a failure.
 */
export function expectedFinal(chunks: readonly Chunk[], video: VideoKept): Final {
  const key = typeof video === 'string' ? `${video}:${chunks.map((c) => c.key).join('|')}` : null;
  let f = key === null ? undefined : finals.get(key);
  if (!f) {
    if (chunks.length === 0) f = { ok: false };
    else {
      const keepVideo = video === 'all' ? () => true : video === 'none' ? () => false : video;
      try {
        const w = finaliseWebm(Buffer.concat(chunks.map((c) => c.bytes)), { keepVideo });
        f = { ok: true, data: w.data, durationMs: Math.round(w.durationMs), hasVideo: w.hasVideo };
      } catch (err) {
        if (!(err instanceof WebmError)) throw err;
        f = { ok: false };
      }
    }
    if (key !== null) finals.set(key, f);
  }
  return f;
}

export type ConsentDecision = 'requested' | 'granted' | 'declined' | 'withdrawn';

/** What the database holds that the model cannot know: when a recording started, got its last chunk, and when consent to video changed. */
export interface VideoConsentTimes {
  startedAt: number;
  lastChunkAt: number | null;
  /** Every decision on consent to video in the recording's consultation, oldest first (ms since the epoch). */
  decisions: { decision: ConsentDecision; at: number; afterStart: boolean }[];
}

export async function videoConsentTimes(service: TestService, recordingId: string): Promise<VideoConsentTimes> {
  return service.db.transaction({ kind: 'system', id: null, role: null, sessionId: null, reason: 'test: consent to video while a recording ran' }, async (tx) => {
    const rec = await tx.selectFrom('recordings').select(['started_at', 'last_chunk_at']).where('id', '=', recordingId).executeTakeFirstOrThrow();
    const rows = await tx
      .selectFrom('recording_consents as rc')
      .innerJoin('recordings as r', 'r.consultation_id', 'rc.consultation_id')
      .where('r.id', '=', recordingId)
      .where('rc.media', '=', 'video')
      // Compared in the database, to the microsecond: whether it came before or after the start is the model's to check.
      .select(['rc.decision', 'rc.created_at', sql<boolean>`rc.created_at > r.started_at`.as('after_start')])
      .orderBy('rc.created_at')
      .execute();
    return {
      startedAt: new Date(rec.started_at).getTime(),
      lastChunkAt: rec.last_chunk_at === null ? null : new Date(rec.last_chunk_at).getTime(),
      decisions: rows.map((r) => ({ decision: r.decision, at: new Date(r.created_at).getTime(), afterStart: r.after_start })),
    };
  });
}

/**
 * The rule for keeping video, restated from issue 15 rather than taken from the service. Consent
 * to video is in force from a grant until the next decision of any other kind. A block at t ms of
 * the recording was captured no earlier than startedAt + t (the recorder starts after the server
 * made the recording) and no later than lag ms after that, where lag is how much later than its
 * own time the last block reached the server (lastChunkAt − startedAt − the last block's time, at
 * least 0). It may be kept only if that whole span lies inside one window of consent.
 */
export function keepVideoByConsent(times: VideoConsentTimes): KeepVideo {
  const windows: { from: number; to: number }[] = [];
  let open: number | null = null;
  for (const d of times.decisions) {
    if (d.decision === 'granted') open ??= d.at;
    else if (open !== null) {
      windows.push({ from: open, to: d.at });
      open = null;
    }
  }
  if (open !== null) windows.push({ from: open, to: Infinity });
  const arrived = times.lastChunkAt ?? times.startedAt;
  return (timeMs, lastBlockMs) => {
    const earliest = times.startedAt + timeMs;
    const latest = earliest + Math.max(0, arrived - times.startedAt - lastBlockMs);
    return windows.some((w) => w.from <= earliest && latest < w.to);
  };
}

/** Checks the status (and error code) of an answer, with the body in the message. */
export function expectAnswer(res: Reply, status: number, code: string | undefined, what: string) {
  const got = { status: res.status, code: res.body?.error?.code as string | undefined };
  const want = { status, code: code ?? (status >= 400 ? got.code : undefined) };
  if (status < 400) want.code = undefined;
  if (got.status !== want.status || got.code !== want.code) {
    expect.fail(`${what}: expected ${want.status}${want.code ? ` ${want.code}` : ''}, got ${got.status}${got.code ? ` ${got.code}` : ''}: ${String(res.raw.body).slice(0, 500)}`);
  }
}

/**
 * Waits (a few seconds at most) for a recording to be finalised: the stop after consent is
 * withdrawn runs after that answer, in the background. Waiting for 'finalising' would not do: the
 * finaliser is handed the recording only once the stop's transaction is seen to commit.
 */
export async function waitUntilFinalised(service: TestService, recordingId: string, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const row = await service.db.transaction({ kind: 'system', id: null, role: null, sessionId: null, reason: 'test: wait for a recording to stop' }, (tx) =>
      tx.selectFrom('recordings').select('status').where('id', '=', recordingId).executeTakeFirst(),
    );
    if (row?.status === 'ready' || row?.status === 'failed' || Date.now() > until) break;
    await new Promise((r) => setTimeout(r, 2));
  }
  await service.deps.recordings.finaliser.idle();
}

/**
 * New lines in the service's log at level error or above since the last call (a finalisation
 * that crashed, an egress block); older lines are dropped so a long run does not keep them all.
 */
export function newLogErrors(service: TestService, cursor: { at: number }): string[] {
  const logs = service.logs;
  const out: string[] = [];
  for (let i = cursor.at; i < logs.length; i++) {
    const line = logs[i]!;
    const m = /"level":(\d+)/.exec(line);
    if (m && Number(m[1]) >= 50) out.push(line);
  }
  if (logs.length > 5_000) {
    logs.length = 0;
    cursor.at = 0;
  } else cursor.at = logs.length;
  return out;
}
