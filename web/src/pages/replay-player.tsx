import { Link, useParams } from 'react-router';
import { getReplay, replayMediaUrl } from '../api';
import type { Replay } from '../api-types';
import { ConsultationNotesSection } from '../components/consultation-notes';
import { LoadedContent } from '../components/loading';
import { LocalTime } from '../components/local-time';
import { usePageTitle } from '../components/page-title';
import { useSignedIn } from '../session';
import { useApi } from '../use-api';
import { formatDuration } from '../format';
import { replayWhen } from './patient-replays';

function Player({ replay, clinician }: { replay: Replay; clinician: boolean }) {
  return (
    <>
      <h1>Consultation of <LocalTime iso={replayWhen(replay)} /></h1>
      <video className="replay__video" controls preload="metadata" src={replayMediaUrl(replay.id)} aria-label="Consultation recording">
        Your browser cannot play this recording.
      </video>
      <dl className="summary-list">
        <div>
          <dt>{clinician ? 'Patient' : 'GP'}</dt>
          <dd>{clinician ? replay.patient.displayName : replay.clinician.displayName}</dd>
        </div>
        <div>
          <dt>Recorded</dt>
          <dd>{replay.mode === 'video' ? 'Sound and video' : 'Sound only'}</dd>
        </div>
        <div>
          <dt>Recording started</dt>
          <dd>
            <LocalTime iso={replay.recordedAt} />
          </dd>
        </div>
        <div>
          <dt>Duration</dt>
          <dd>{formatDuration(replay.durationMs)}</dd>
        </div>
      </dl>
      <ConsultationNotesSection consultationId={replay.consultationId} author={clinician ? 'you' : replay.clinician.displayName} />
    </>
  );
}

export function ReplayPlayerPage() {
  const { recordingId = '' } = useParams();
  const session = useSignedIn();
  const clinician = session.account.kind === 'clinician';
  usePageTitle('Consultation replay');
  const { result, reload } = useApi(() => getReplay(recordingId), [recordingId]);
  return (
    <>
      <LoadedContent result={result} what="the recording" onRetry={reload}>
        {(replay) => <Player replay={replay} clinician={clinician} />}
      </LoadedContent>
      <p className="after-form">
        <Link to={clinician ? '/clinician/replays' : '/patient/replays'}>
          {clinician ? 'All recorded consultations' : 'All consultation replays'}
        </Link>
      </p>
    </>
  );
}
