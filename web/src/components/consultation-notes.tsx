import { getConsultationNotes } from '../api';
import type { ConsultationNotes } from '../api-types';
import { useFeatureOn } from '../feature-status';
import { useApi } from '../use-api';
import { FeatureOffNotice } from './feature-off';
import { LoadedContent } from './loading';
import { LocalTime } from './local-time';

/** The clinician's notes of a consultation, as the patient reads them once it has ended. */
export function NotesText({ notes }: { notes: ConsultationNotes }) {
  if (!notes.body.trim()) return <p className="empty-state">No notes were written for this consultation.</p>;
  return (
    <>
      <p className="replay__notes break">{notes.body}</p>
      {notes.updatedAt ? (
        <p className="muted">
          Last updated <LocalTime iso={notes.updatedAt} />
        </p>
      ) : null}
    </>
  );
}

/** A consultation's notes under a heading, loaded from the API. */
export function ConsultationNotesSection({ consultationId, author }: { consultationId: string; author: string }) {
  const notesOn = useFeatureOn('notes');
  return (
    <section aria-labelledby="notes-heading">
      <h2 id="notes-heading">Notes from {author}</h2>
      {notesOn ? <LoadedNotes consultationId={consultationId} /> : <FeatureOffNotice feature="notes" recheck />}
    </section>
  );
}

function LoadedNotes({ consultationId }: { consultationId: string }) {
  const notes = useApi(() => getConsultationNotes(consultationId), [consultationId]);
  return (
    <LoadedContent result={notes.result} what="the notes" onRetry={notes.reload}>
      {(n) => <NotesText notes={n} />}
    </LoadedContent>
  );
}
