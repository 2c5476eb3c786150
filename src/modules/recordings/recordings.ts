import { createHash, randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Scope, Scopes } from '../../access/scope';
import type { RequestContext } from '../../access/request-context';
import { sql } from '../../db';
import { AppError, notFound } from '../../errors';
import { consultationsInScope, partyOf, requireClinician } from '../consultations/consultation-access';
import { consentStates, consentWindows, type ConsentWindow } from '../consultations/consultations';
import { BlobNotFoundError, type BlobStore } from './blob-store';
import { newDataKey, unwrapDataKey, wrapDataKey, type MasterKey } from './recording-keys';
import { openChunk, openRangeStream, sealChunk, sealRecording, SEGMENT_SIZE, TamperError } from './sealed-segments';
import { sharedOpener } from './segment-opener';
import { finaliseWebm, WebmError, type FinaliseOptions } from './webm';
import { faultActive } from '../../testing/fault-points';

export interface RecordingLimits {
  maxChunkBytes: number;
  maxRecordingBytes: number;
  /** After the consultation ends, how long the last chunks may still arrive before the recording is finalised anyway. */
  endGraceMs: number;
  /** A recording with no chunk for this long (the clinician's browser crashed) is finalised from what arrived. */
  idleMs: number;
  /** A finalisation that has not finished in this long (the process died) is started again. */
  finaliseRetryMs: number;
}

export interface RecordingDeps {
  blobs: BlobStore;
  masterKey: MasterKey;
  limits: RecordingLimits;
  /** Finalises recordings in the background (one at a time per recording). */
  finaliser: { schedule(recordingId: string): void; idle(): Promise<void> };
  /** Tells both sides of a consultation that its recording changed (the "● Recording" badge). */
  changed(consultationId: string): void;
}

export interface RecordingUploadView {
  id: string;
  /** For the egress check, not sent: whose recording this is. */
  patientId: string;
  clinicianId: string;
  status: 'recording' | 'finalising' | 'ready' | 'failed';
  nextSeq: number;
  receivedBytes: number;
  maxChunkBytes: number;
}

/** bytea arrives as a Buffer from pg and as a plain Uint8Array from PGlite. */
function asBuffer(v: Uint8Array): Buffer {
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

const SYSTEM_REQUEST: RequestContext = { requestId: 'recordings', clientIp: null, userAgent: null };

const chunkName = (recordingId: string, seq: number) => `staging/${recordingId}/${String(seq).padStart(8, '0')}`;
const stagingPrefix = (recordingId: string) => `staging/${recordingId}`;
export const recordingBlobName = (recordingId: string) => `recordings/${recordingId}`;

function uploadView(
  r: { id: string; patient_id: string; clinician_id: string; status: RecordingUploadView['status']; next_seq: number; received_bytes: string | number },
  deps: RecordingDeps,
): RecordingUploadView {
  return {
    id: r.id,
    patientId: r.patient_id,
    clinicianId: r.clinician_id,
    status: r.status,
    nextSeq: r.next_seq,
    receivedBytes: Number(r.received_bytes),
    maxChunkBytes: deps.limits.maxChunkBytes,
  };
}

/** Recordings the caller may see: the patient's own, the clinician's consultations'. Nobody else's. */
function recordingsInScope(scope: Scope) {
  const me = partyOf(scope);
  if (faultActive('replay_scope_dropped')) return scope.tx.selectFrom('recordings');
  return me.role === 'patient'
    ? scope.tx.selectFrom('recordings').where('recordings.patient_id', '=', me.accountId)
    : scope.tx.selectFrom('recordings').where('recordings.clinician_id', '=', me.accountId);
}

/** The clinician's own recordings only: patients never write to a recording. */
async function lockOwnRecording(scope: Scope, recordingId: string) {
  const clinicianId = requireClinician(scope);
  const row = await scope.tx
    .selectFrom('recordings')
    .select(['id', 'patient_id', 'clinician_id', 'consultation_id', 'status', 'next_seq', 'received_bytes', 'wrapped_key', 'key_id'])
    .where('id', '=', recordingId)
    .where('clinician_id', '=', clinicianId)
    .forUpdate()
    .executeTakeFirst();
  if (!row) throw notFound();
  return row;
}

/**
 * The server creates the recording object for a live consultation, once the patient has agreed
 * to audio being recorded. Its patient and clinician are copied from the consultation by the
 * database; nothing the browser sends can name them. A recording left open by an earlier page
 * (a reload) is finalised from what arrived.
 */
export async function startRecording(scope: Scope, deps: RecordingDeps, consultationId: string): Promise<RecordingUploadView> {
  requireClinician(scope);
  const consultation = await consultationsInScope(scope)
    .select(['consultations.id', 'consultations.status', 'consultations.patient_id'])
    .where('consultations.id', '=', consultationId)
    .forUpdate()
    .executeTakeFirst();
  if (!consultation) throw notFound();
  if (consultation.status !== 'live') {
    throw new AppError(consultation.status === 'ended' ? 'consultation_ended' : 'consultation_not_open', 'Recording can start only during the consultation.');
  }
  const consent = await consentStates(scope, consultationId);
  if (consent.audio !== 'granted') {
    throw new AppError('consent_required', 'The patient has not agreed to this consultation being recorded.');
  }
  const open = await scope.tx
    .selectFrom('recordings')
    .select('id')
    .where('consultation_id', '=', consultationId)
    .where('status', '=', 'recording')
    .executeTakeFirst();
  if (open) await claimForFinalising(scope, deps, open.id, 'replaced');

  const id = randomUUID();
  const dataKey = newDataKey();
  const row = await scope.tx
    .insertInto('recordings')
    .values({
      id,
      consultation_id: consultationId,
      media_type: 'video/webm',
      key_id: deps.masterKey.id,
      wrapped_key: wrapDataKey(deps.masterKey, id, dataKey),
    })
    .returning(['id', 'patient_id', 'clinician_id', 'status', 'next_seq', 'received_bytes'])
    .executeTakeFirstOrThrow();
  dataKey.fill(0);
  scope.afterCommit(() => deps.changed(consultationId));
  scope.audit({ action: 'recording.create', objectType: 'recording', objectId: id, patientId: row.patient_id, details: { consultationId } });
  return uploadView(row, deps);
}

export async function readUploadState(scope: Scope, deps: RecordingDeps, recordingId: string): Promise<RecordingUploadView> {
  const clinicianId = requireClinician(scope);
  const row = await scope.tx
    .selectFrom('recordings')
    .select(['id', 'patient_id', 'clinician_id', 'status', 'next_seq', 'received_bytes'])
    .where('id', '=', recordingId)
    .where('clinician_id', '=', clinicianId)
    .executeTakeFirst();
  if (!row) throw notFound();
  scope.audit({ action: 'recording.upload_state', objectType: 'recording', objectId: recordingId, patientId: row.patient_id });
  return uploadView(row, deps);
}

/**
 * One chunk of the clinician's MediaRecorder output. Chunks come in order from 0; sending one
 * again (a retry after a lost answer) is harmless if it is the same bytes, and refused if not.
 * The chunk is sealed with the recording's key before it touches the disk.
 */
export async function uploadChunk(scope: Scope, deps: RecordingDeps, recordingId: string, seq: number, bytes: Buffer): Promise<RecordingUploadView> {
  if (bytes.length === 0) throw new AppError('validation_failed', 'A chunk may not be empty.');
  if (bytes.length > deps.limits.maxChunkBytes) throw new AppError('payload_too_large', 'The chunk is too large.');
  const row = await lockOwnRecording(scope, recordingId);
  const digest = createHash('sha256').update(bytes).digest();

  if (seq < row.next_seq) {
    const earlier = await scope.tx
      .selectFrom('recording_chunks')
      .select('sha256')
      .where('recording_id', '=', recordingId)
      .where('seq', '=', seq)
      .executeTakeFirst();
    if (earlier && Buffer.compare(earlier.sha256, digest) === 0) return uploadView({ ...row, id: recordingId }, deps);
    throw new AppError('chunk_conflict', `Chunk ${seq} was already received with different content.`, { details: { nextSeq: row.next_seq } });
  }
  if (row.status !== 'recording') throw new AppError('recording_not_open', 'This recording is no longer taking chunks.');
  if (seq > row.next_seq) {
    throw new AppError('chunk_out_of_order', `Send chunk ${row.next_seq} first.`, { details: { nextSeq: row.next_seq } });
  }
  const received = Number(row.received_bytes) + bytes.length;
  if (received > deps.limits.maxRecordingBytes) {
    throw new AppError('recording_too_large', 'This recording has reached its maximum size. Stop recording and start a new one.');
  }
  if (row.key_id !== deps.masterKey.id) throw new AppError('recording_damaged', 'This recording cannot be written with the current key.');
  const key = unwrapDataKey(deps.masterKey, recordingId, asBuffer(row.wrapped_key));
  try {
    await deps.blobs.put(chunkName(recordingId, seq), sealChunk(key, recordingId, seq, bytes));
  } finally {
    key.fill(0);
  }
  await scope.tx.insertInto('recording_chunks').values({ recording_id: recordingId, seq, byte_length: bytes.length, sha256: digest }).execute();
  const updated = await scope.tx
    .updateTable('recordings')
    .set({ next_seq: seq + 1, received_bytes: received, last_chunk_at: sql<Date>`now()` })
    .where('id', '=', recordingId)
    .returning(['id', 'patient_id', 'clinician_id', 'status', 'next_seq', 'received_bytes'])
    .executeTakeFirstOrThrow();
  scope.audit({ action: 'recording.chunk', objectType: 'recording', objectId: recordingId, patientId: row.patient_id, details: { seq, bytes: bytes.length } });
  return uploadView(updated, deps);
}

/** The clinician's browser has sent its last chunk: finalise now (in the background). */
export async function finishRecording(scope: Scope, deps: RecordingDeps, recordingId: string): Promise<RecordingUploadView> {
  const row = await lockOwnRecording(scope, recordingId);
  if (row.status === 'recording') await claimForFinalising(scope, deps, recordingId, 'finished');
  const now = await scope.tx
    .selectFrom('recordings')
    .select(['id', 'patient_id', 'clinician_id', 'status', 'next_seq', 'received_bytes'])
    .where('id', '=', recordingId)
    .executeTakeFirstOrThrow();
  return uploadView(now, deps);
}

/** Marks a recording as finalising (no more chunks) and hands it to the finaliser after commit. */
export async function claimForFinalising(scope: Scope, deps: RecordingDeps, recordingId: string, why: string): Promise<boolean> {
  const claimed = await scope.tx
    .updateTable('recordings')
    .set({ status: 'finalising', finalising_since: sql<Date>`now()` })
    .where('id', '=', recordingId)
    .where('status', '=', 'recording')
    .returning(['patient_id', 'consultation_id'])
    .executeTakeFirst();
  if (!claimed) return false;
  scope.afterCommit(() => deps.changed(claimed.consultation_id));
  scope.audit({ action: 'recording.stop', objectType: 'recording', objectId: recordingId, patientId: claimed.patient_id, details: { why } });
  scope.afterCommit(() => deps.finaliser.schedule(recordingId));
  return true;
}

/** The open recording of a consultation, finalised at once (the patient withdrew consent). */
export async function stopConsultationRecording(scopes: Scopes, deps: RecordingDeps, consultationId: string, why: string): Promise<void> {
  await scopes.system(`stop recording: ${why}`, SYSTEM_REQUEST, async (scope) => {
    const open = await scope.tx
      .selectFrom('recordings')
      .select('id')
      .where('consultation_id', '=', consultationId)
      .where('status', '=', 'recording')
      .executeTakeFirst();
    if (open) await claimForFinalising(scope, deps, open.id, why);
  });
}

/**
 * Turns the chunks into the stored recording: opened and checked one by one, joined, made
 * seekable (duration and cues), stripped of any video recorded while the patient's consent to
 * video was not in force, sealed in segments under the recording's own key. Runs as system work;
 * the recording's owner was fixed when it was created and is not touched here.
 */
export async function finaliseRecording(scopes: Scopes, deps: RecordingDeps, recordingId: string): Promise<'ready' | 'failed' | 'skipped'> {
  const rec = await scopes.system('finalise recording', SYSTEM_REQUEST, async (scope) => {
    const row = await scope.tx
      .selectFrom('recordings')
      .select(['id', 'patient_id', 'consultation_id', 'status', 'wrapped_key', 'key_id', 'next_seq', 'started_at', 'last_chunk_at'])
      .where('id', '=', recordingId)
      .executeTakeFirst();
    if (!row || row.status !== 'finalising') return null;
    const videoConsent = await consentWindows(scope, row.consultation_id, 'video');
    const chunks = await scope.tx
      .selectFrom('recording_chunks')
      .select(['seq', 'byte_length', 'sha256'])
      .where('recording_id', '=', recordingId)
      .orderBy('seq')
      .execute();
    return { ...row, chunks, videoConsent };
  });
  if (!rec) return 'skipped';
  const keepVideo = keepVideoWithConsent(rec.videoConsent, rec.started_at, rec.last_chunk_at);

  let outcome: FinalRecording | { ok: false; code: string };
  try {
    const key = unwrapDataKey(deps.masterKey, recordingId, asBuffer(rec.wrapped_key));
    try {
      const parts: Buffer[] = [];
      for (const c of rec.chunks) {
        const sealed = await readWhole(deps.blobs, chunkName(recordingId, c.seq));
        const plain = openChunk(key, recordingId, c.seq, sealed);
        if (plain.length !== c.byte_length || Buffer.compare(createHash('sha256').update(plain).digest(), c.sha256) !== 0) {
          throw new TamperError('a chunk does not match what was received');
        }
        parts.push(plain);
      }
      if (parts.length === 0) throw new WebmError('no_media', 'no chunks arrived');
      outcome = await sealAndStore(deps, recordingId, key, Buffer.concat(parts), { keepVideo });
    } finally {
      key.fill(0);
    }
  } catch (err) {
    if (err instanceof WebmError) outcome = { ok: false, code: err.code };
    else if (err instanceof TamperError) outcome = { ok: false, code: 'tampered' };
    else throw err;
  }

  const result = outcome;
  await scopes.system('finalise recording', SYSTEM_REQUEST, async (scope) => {
    scope.afterCommit(() => deps.changed(rec.consultation_id));
    await markFinalised(scope, { id: recordingId, consultationId: rec.consultation_id, patientId: rec.patient_id, startedAt: rec.started_at }, result, {
      chunks: rec.chunks.length,
    });
  });
  await deps.blobs.deletePrefix(stagingPrefix(recordingId));
  return result.ok ? 'ready' : 'failed';
}

export interface FinalRecording {
  ok: true;
  plaintextSize: number;
  durationMs: number;
  cues: [number, number][];
  mediaType: 'video/webm' | 'audio/webm';
}

/**
 * Which video blocks of a recording the patient consented to, by their time on the recording's
 * timeline. The recorder starts after the server created the recording (`startedAt`), so a block
 * at t was captured no earlier than startedAt + t; and its last block reached the server by
 * `lastChunkAt`, which bounds how much later: by lastChunkAt − startedAt − (last block's time).
 * A block is kept only if the whole of that span lies in one window of consent, so a late
 * start of the recorder never makes video recorded after a withdrawal look as if it came before.
 */
export function keepVideoWithConsent(
  windows: readonly ConsentWindow[],
  startedAt: Date | string,
  lastChunkAt: Date | string | null,
): NonNullable<FinaliseOptions['keepVideo']> {
  const started = new Date(startedAt).getTime();
  const received = lastChunkAt === null ? started : new Date(lastChunkAt).getTime();
  return (timeMs, lastBlockMs) => {
    const lag = Math.max(0, received - started - lastBlockMs);
    const earliest = started + timeMs;
    const latest = earliest + lag;
    return windows.some((w) => w.from <= earliest && latest < w.to);
  };
}

/**
 * Makes the webm seekable, seals it in segments under the recording's key and stores it.
 * `keepVideo` says which video may be kept (finaliseRecording gives the patient's consent to
 * video); without it the video is kept whole, for callers that have already checked consent.
 */
export async function sealAndStore(
  deps: RecordingDeps,
  recordingId: string,
  key: Buffer,
  webmBytes: Buffer,
  opts: FinaliseOptions = {},
): Promise<FinalRecording> {
  const webm = finaliseWebm(webmBytes, opts);
  await deps.blobs.put(recordingBlobName(recordingId), sealRecording(key, recordingId, webm.data));
  return {
    ok: true,
    plaintextSize: webm.data.length,
    durationMs: Math.round(webm.durationMs),
    cues: webm.cues.map((c) => [c.offset, Math.round(c.timeMs)]),
    mediaType: webm.hasVideo ? 'video/webm' : 'audio/webm',
  };
}

/**
 * Records the outcome of a finalisation (system work). Video counts as recorded only if the
 * patient's consent to video was in force at some moment while this recording ran.
 */
export async function markFinalised(
  scope: Scope,
  rec: { id: string; consultationId: string; patientId: string; startedAt: Date | string },
  result: FinalRecording | { ok: false; code: string },
  extra: Record<string, number> = {},
): Promise<void> {
  const started = new Date(rec.startedAt).getTime();
  const videoInForce = (await consentWindows(scope, rec.consultationId, 'video')).some((w) => w.to > started);
  const done = await scope.tx
    .updateTable('recordings')
    .set(
      result.ok
        ? {
            status: 'ready',
            media_type: result.mediaType,
            plaintext_size: result.plaintextSize,
            segment_size: SEGMENT_SIZE,
            duration_ms: result.durationMs,
            time_index: JSON.stringify(result.cues),
            video_consented: result.mediaType === 'video/webm' && videoInForce,
            finalising_since: null,
            finalised_at: sql<Date>`now()`,
          }
        : { status: 'failed', failure_code: result.code, finalising_since: null, finalised_at: sql<Date>`now()` },
    )
    .where('id', '=', rec.id)
    .where('status', '=', 'finalising')
    .returning('patient_id')
    .executeTakeFirst();
  if (done) {
    scope.audit({
      action: result.ok ? 'recording.finalise' : 'recording.finalise_failed',
      objectType: 'recording',
      objectId: rec.id,
      patientId: rec.patientId,
      outcome: result.ok ? 'success' : 'failure',
      details: result.ok ? { ...extra, bytes: result.plaintextSize, durationMs: result.durationMs } : { ...extra, code: result.code },
    });
  }
}

async function readWhole(blobs: BlobStore, name: string): Promise<Buffer> {
  const reader = await blobs.open(name);
  try {
    return await reader.read(0, await reader.size());
  } finally {
    await reader.close();
  }
}

/**
 * Recordings nobody will finish: the consultation ended a while ago, the clinician's browser went
 * silent, or a finalisation died with its process. Each is claimed and finalised from what arrived.
 */
export async function sweepRecordings(scopes: Scopes, deps: RecordingDeps, now = new Date()): Promise<string[]> {
  const { endGraceMs, idleMs, finaliseRetryMs } = deps.limits;
  const ids = await scopes.system('sweep unfinished recordings', SYSTEM_REQUEST, async (scope) => {
    const stale = await scope.tx
      .selectFrom('recordings')
      .innerJoin('consultations as c', 'c.id', 'recordings.consultation_id')
      .select(['recordings.id', 'recordings.status'])
      .where((eb) =>
        eb.or([
          eb.and([
            eb('recordings.status', '=', 'recording'),
            eb.or([
              eb('c.ended_at', '<', new Date(now.getTime() - endGraceMs)),
              eb(sql`coalesce(recordings.last_chunk_at, recordings.started_at)`, '<', new Date(now.getTime() - idleMs)),
            ]),
          ]),
          eb.and([eb('recordings.status', '=', 'finalising'), eb('recordings.finalising_since', '<', new Date(now.getTime() - finaliseRetryMs))]),
        ]),
      )
      .limit(100)
      .execute();
    const out: string[] = [];
    for (const r of stale) {
      if (r.status === 'recording') {
        if (await claimForFinalising(scope, deps, r.id, 'interrupted')) out.push(r.id);
      } else {
        await scope.tx.updateTable('recordings').set({ finalising_since: sql<Date>`now()` }).where('id', '=', r.id).execute();
        scope.afterCommit(() => deps.finaliser.schedule(r.id));
        out.push(r.id);
      }
    }
    return out;
  });
  return ids;
}

export interface ReplayView {
  id: string;
  patientId: string;
  consultationId: string;
  consultationStartedAt: string | null;
  recordedAt: string;
  clinician: { id: string; displayName: string };
  patient: { displayName: string };
  mode: 'audio' | 'video';
  durationMs: number;
  sizeBytes: number;
  mediaType: string;
}

function replaysQuery(scope: Scope) {
  return recordingsInScope(scope)
    .innerJoin('consultations as c', 'c.id', 'recordings.consultation_id')
    .innerJoin('accounts as gp', 'gp.id', 'recordings.clinician_id')
    .leftJoin('patient_profiles as p', 'p.account_id', 'recordings.patient_id')
    .select([
      'recordings.id',
      'recordings.patient_id',
      'recordings.consultation_id',
      'recordings.clinician_id',
      'recordings.started_at',
      'recordings.duration_ms',
      'recordings.plaintext_size',
      'recordings.media_type',
      'recordings.video_consented',
      'c.started_at as consultation_started_at',
      'gp.display_name as clinician_name',
      'p.given_name',
      'p.family_name',
    ])
    .where('recordings.status', '=', 'ready');
}

type ReplayRow = Awaited<ReturnType<ReturnType<typeof replaysQuery>['executeTakeFirstOrThrow']>>;

function toReplay(scope: Scope, r: ReplayRow): ReplayView {
  return {
    id: r.id,
    patientId: faultActive('replay_owner_from_request') ? partyOf(scope).accountId : r.patient_id,
    consultationId: r.consultation_id,
    consultationStartedAt: r.consultation_started_at ? new Date(r.consultation_started_at).toISOString() : null,
    recordedAt: new Date(r.started_at).toISOString(),
    clinician: { id: r.clinician_id, displayName: r.clinician_name },
    patient: { displayName: r.given_name ? `${r.given_name} ${r.family_name}` : 'Patient' },
    mode: r.video_consented ? 'video' : 'audio',
    durationMs: r.duration_ms ?? 0,
    sizeBytes: Number(r.plaintext_size ?? 0),
    mediaType: r.media_type,
  };
}

/** "Consultation replays": the patient's own recorded consultations; a clinician's own consultations'. */
export async function listReplays(scope: Scope): Promise<{ replays: ReplayView[] }> {
  const rows = await replaysQuery(scope).orderBy('recordings.started_at', 'desc').limit(200).execute();
  for (const r of rows) scope.audit({ action: 'recording.list', objectType: 'recording', objectId: r.id, patientId: r.patient_id });
  return { replays: rows.map((r) => toReplay(scope, r)) };
}

export async function readReplay(scope: Scope, recordingId: string): Promise<ReplayView> {
  const row = await replaysQuery(scope).where('recordings.id', '=', recordingId).executeTakeFirst();
  if (!row) throw notFound();
  scope.audit({ action: 'recording.read', objectType: 'recording', objectId: recordingId, patientId: row.patient_id });
  return toReplay(scope, row);
}

export interface ReplayMedia {
  recordingId: string;
  patientId: string;
  /** Whose consultation it was: the egress check holds a clinician to their own. */
  clinicianId: string;
  mediaType: string;
  size: number;
  /** Inclusive byte range to send; `partial` when the request asked for a range. */
  start: number;
  end: number;
  partial: boolean;
  keyId: string;
  wrappedKey: Buffer;
  timeIndex: [number, number][];
  durationMs: number;
}

/**
 * Parses a Range header the way browsers' media elements send it (`bytes=a-`, `bytes=a-b`,
 * `bytes=-n`). A header we do not understand is ignored (the whole file is sent), as HTTP allows;
 * a range that starts past the end is refused with 416.
 */
export function parseRange(header: string | undefined, size: number): { start: number; end: number; partial: boolean } {
  const whole = { start: 0, end: size - 1, partial: false };
  if (!header) return whole;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return whole;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) throw unsatisfiable(size);
    return { start: Math.max(0, size - n), end: size - 1, partial: true };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (!Number.isSafeInteger(start) || start >= size || end < start) throw unsatisfiable(size);
  return { start, end, partial: true };
}

function unsatisfiable(size: number) {
  return new AppError('range_not_satisfiable', 'The requested range is outside the recording.', { headers: { 'content-range': `bytes */${size}` } });
}

/** Which seconds of the recording a byte range holds, from the cluster index made at finalisation. */
export function secondsCovered(timeIndex: [number, number][], durationMs: number, start: number, end: number): { fromMs: number; toMs: number } {
  let fromMs = 0;
  let toMs = durationMs;
  for (const [offset, ms] of timeIndex) {
    if (offset <= start) fromMs = ms;
    if (offset > end) {
      toMs = ms;
      break;
    }
  }
  // A range wholly inside the headers (before the first cluster) holds no media.
  if (timeIndex.length > 0 && end < timeIndex[0]![0]) return { fromMs: 0, toMs: 0 };
  return { fromMs, toMs: Math.max(fromMs, toMs) };
}

/**
 * A replay request: checked in the caller's scope and audited with the exact bytes it will be
 * sent and the seconds they cover, before a byte leaves.
 */
export async function prepareReplayMedia(scope: Scope, recordingId: string, rangeHeader: string | undefined): Promise<ReplayMedia> {
  const row = await recordingsInScope(scope)
    .select([
      'recordings.id',
      'recordings.patient_id',
      'recordings.clinician_id',
      'recordings.status',
      'recordings.media_type',
      'recordings.plaintext_size',
      'recordings.key_id',
      'recordings.wrapped_key',
      'recordings.time_index',
      'recordings.duration_ms',
    ])
    .where('recordings.id', '=', recordingId)
    .executeTakeFirst();
  if (!row) throw notFound();
  if (row.status !== 'ready') throw new AppError('recording_not_ready', 'This recording is still being prepared. Try again in a moment.');
  const size = Number(row.plaintext_size);
  const range = parseRange(rangeHeader, size);
  const timeIndex = row.time_index ?? [];
  const covered = secondsCovered(timeIndex, row.duration_ms ?? 0, range.start, range.end);
  scope.audit({
    action: 'recording.play',
    objectType: 'recording',
    objectId: recordingId,
    patientId: row.patient_id,
    details: { range: `${range.start}-${range.end}`, bytes: range.end - range.start + 1, fromMs: covered.fromMs, toMs: covered.toMs },
  });
  return {
    recordingId,
    patientId: faultActive('replay_owner_from_request') ? partyOf(scope).accountId : row.patient_id,
    clinicianId: row.clinician_id,
    mediaType: row.media_type,
    size,
    start: range.start,
    end: range.end,
    partial: range.partial,
    keyId: row.key_id,
    wrappedKey: asBuffer(row.wrapped_key),
    timeIndex,
    durationMs: row.duration_ms ?? 0,
  };
}

/**
 * The decrypting stream of a prepared replay: only the segments the range needs are read and
 * opened. It resolves once the first segment has been opened and checked (or the whole file has
 * failed its size check), so a damaged recording is answered with an error before any header is
 * sent; damage further in cuts the stream short. Never a byte of unverified plaintext.
 *
 * `sink`: the HTTP response the stream will be piped into, as its only consumer; the stream then
 * reuses the buffers it pushed once the response has passed them on (see RangeStreamSink).
 */
export async function openReplayStream(
  deps: RecordingDeps,
  media: ReplayMedia,
  { signal, sink, carrier }: { signal?: AbortSignal; sink?: import('./sealed-segments').RangeStreamSink; carrier?: import('./sealed-segments').RangeStreamCarrier } = {},
): Promise<Readable> {
  if (media.keyId !== deps.masterKey.id) throw new TamperError('the recording was sealed under another master key');
  const key = unwrapDataKey(deps.masterKey, media.recordingId, media.wrappedKey);
  let reader: Awaited<ReturnType<BlobStore['open']>>;
  try {
    reader = await deps.blobs.open(recordingBlobName(media.recordingId));
  } catch (err) {
    key.fill(0);
    if (err instanceof BlobNotFoundError) throw new TamperError('the sealed recording is missing');
    throw err;
  }
  let stream: Readable;
  try {
    stream = openRangeStream({
      key,
      recordingId: media.recordingId,
      plaintextSize: media.size,
      reader,
      start: media.start,
      endInclusive: media.end,
      opener: sharedOpener(),
      ...(signal ? { signal } : {}),
      ...(sink ? { sink } : {}),
      ...(carrier ? { carrier } : {}),
    });
  } catch (err) {
    key.fill(0);
    await reader.close().catch(() => undefined);
    throw err;
  }
  stream.once('close', () => {
    key.fill(0);
    // Idempotent; a failure to close a read-only descriptor leaves nothing to undo.
    reader.close().catch(() => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error) => {
      stream.off('readable', onReadable);
      stream.off('error', done);
      stream.off('end', onReadable);
      if (err) reject(err);
      else resolve();
    };
    const onReadable = () => done();
    stream.once('readable', onReadable);
    stream.once('end', onReadable);
    stream.once('error', done);
  });
  return stream;
}
