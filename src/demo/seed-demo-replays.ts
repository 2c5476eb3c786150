import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RequestContext } from '../access/request-context';
import type { Scopes } from '../access/scope';
import { sql } from '../db';
import { newDataKey, wrapDataKey } from '../modules/recordings/recording-keys';
import { markFinalised, sealAndStore, type RecordingDeps } from '../modules/recordings/recordings';

const ASSETS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'assets');
const REQUEST: RequestContext = { requestId: 'startup', clientIp: null, userAgent: null };

/**
 * Replays for the demo clinic: the completed appointments of the demo patients get an ended
 * consultation with the patient's consent, a short recording (real Chromium MediaRecorder clips,
 * see scripts/make-demo-clip.mjs) and the GP's notes, so a newcomer can open "Consultation
 * replays" at once. The recordings go through the same sealing as real ones. Idempotent.
 */
export async function seedDemoReplays(scopes: Scopes, deps: RecordingDeps): Promise<number> {
  const clips = {
    audio: await readFile(path.join(ASSETS, 'demo-consultation-audio.webm')),
    video: await readFile(path.join(ASSETS, 'demo-consultation.webm')),
  };
  const pending = await scopes.system('demo clinic replays', REQUEST, async (scope) => {
    const rows = await scope.tx
      .selectFrom('appointments as a')
      .innerJoin('accounts as p', 'p.id', 'a.patient_id')
      .leftJoin('consultations as c', 'c.appointment_id', 'a.id')
      .select(['a.id', 'a.mode', 'a.starts_at', 'a.ends_at', 'a.reason', 'a.patient_id', 'a.clinician_id'])
      .where('p.email', 'in', ['amara@demo.confidant.test', 'ben@demo.confidant.test'])
      .where('a.status', '=', 'completed')
      .where('c.id', 'is', null)
      .execute();
    const out: { recordingId: string; consultationId: string; patientId: string; startedAt: Date; media: 'audio' | 'video'; wrapped: Buffer; key: Buffer }[] = [];
    for (const a of rows) {
      const startedAt = new Date(a.starts_at);
      const { id: consultationId } = await scope.tx
        .insertInto('consultations')
        .values({ appointment_id: a.id, mode: a.mode })
        .returning('id')
        .executeTakeFirstOrThrow();
      await scope.tx
        .updateTable('consultations')
        .set({ status: 'ended', patient_joined_at: startedAt, started_at: startedAt, ended_at: new Date(a.ends_at) })
        .where('id', '=', consultationId)
        .execute();
      const consents: ['audio' | 'video', 'requested' | 'granted', string][] = [
        ['audio', 'requested', a.clinician_id],
        ['audio', 'granted', a.patient_id],
      ];
      if (a.mode === 'video') consents.push(['video', 'requested', a.clinician_id], ['video', 'granted', a.patient_id]);
      for (const [i, [media, decision, actor]] of consents.entries()) {
        await scope.tx
          .insertInto('recording_consents')
          .values({ consultation_id: consultationId, media, decision, actor_id: actor, created_at: new Date(startedAt.getTime() + 30_000 + i * 1000) })
          .execute();
      }
      await scope.tx
        .insertInto('consultation_notes')
        .values({ consultation_id: consultationId, body: demoNotes(a.reason) })
        .execute();
      const recordingId = randomUUID();
      const key = newDataKey();
      const wrapped = wrapDataKey(deps.masterKey, recordingId, key);
      await scope.tx
        .insertInto('recordings')
        .values({
          id: recordingId,
          consultation_id: consultationId,
          media_type: a.mode === 'video' ? 'video/webm' : 'audio/webm',
          key_id: deps.masterKey.id,
          wrapped_key: wrapped,
          started_at: new Date(startedAt.getTime() + 40_000),
        })
        .execute();
      await scope.tx
        .updateTable('recordings')
        .set({ status: 'finalising', finalising_since: sql<Date>`now()` })
        .where('id', '=', recordingId)
        .execute();
      scope.audit({ action: 'recording.create', objectType: 'recording', objectId: recordingId, patientId: a.patient_id, details: { demo: true } });
      out.push({ recordingId, consultationId, patientId: a.patient_id, startedAt: new Date(startedAt.getTime() + 40_000), media: a.mode, wrapped, key });
    }
    return out;
  });
  for (const r of pending) {
    const result = await sealAndStore(deps, r.recordingId, r.key, clips[r.media]);
    r.key.fill(0);
    await scopes.system('demo clinic replays', REQUEST, (scope) =>
      markFinalised(scope, { id: r.recordingId, consultationId: r.consultationId, patientId: r.patientId, startedAt: r.startedAt }, result, { demo: 1 }),
    );
  }
  return pending.length;
}

function demoNotes(reason: string): string {
  return [
    `Presenting complaint: ${reason.toLowerCase()}.`,
    'History taken; no red flags. Advice given and safety-netted.',
    'Plan: review in two weeks if no better, sooner if worse.',
    '(Demo clinic notes: no real patient.)',
  ].join('\n');
}
