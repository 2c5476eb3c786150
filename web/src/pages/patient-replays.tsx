import { Link } from 'react-router';
import { listReplays } from '../api';
import type { Replay } from '../api-types';
import { FeatureOffNotice } from '../components/feature-off';
import { LoadedContent } from '../components/loading';
import { LocalTime } from '../components/local-time';
import { usePageTitle } from '../components/page-title';
import { formatDateTime, formatDuration } from '../format';
import { useFeatureOn } from '../feature-status';
import { useApi } from '../use-api';

/** The notice a greyed Play points to. */
const PLAYBACK_OFF_ID = 'replay-playback-off';

/** When the consultation took place: its start, or the recording's if it has none. */
export const replayWhen = (r: Replay) => r.consultationStartedAt ?? r.recordedAt;

/** The replays table, for patients (by clinician) and clinicians (by patient). */
export function ReplayTable({ replays, caption, who }: { replays: Replay[]; caption: string; who: 'clinician' | 'patient' }) {
  const playbackOn = useFeatureOn('replay_playback');
  return (
    <>
      {playbackOn ? null : <FeatureOffNotice feature="replay_playback" id={PLAYBACK_OFF_ID} recheck />}
      <div className="table-scroll" role="region" aria-label={caption} tabIndex={0}>
        <table className="table table--cards replays">
          <caption className="visually-hidden">{caption}</caption>
          <thead>
            <tr>
              <th scope="col">Date</th>
              <th scope="col">{who === 'clinician' ? 'GP' : 'Patient'}</th>
              <th scope="col">Recorded</th>
              <th scope="col" className="numeric">
                Duration
              </th>
              <th scope="col">
                <span className="visually-hidden">Play</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {replays.map((r) => (
              <tr key={r.id} data-consultation-id={r.consultationId}>
                <th scope="row">
                  <LocalTime iso={replayWhen(r)} />
                </th>
                <td data-label={who === 'clinician' ? 'GP' : 'Patient'}>
                  {who === 'clinician' ? r.clinician.displayName : r.patient.displayName}
                </td>
                <td data-label="Recorded">{r.mode === 'video' ? 'Sound and video' : 'Sound only'}</td>
                <td className="numeric" data-label="Duration">
                  {formatDuration(r.durationMs)}
                </td>
                <td>
                  {playbackOn ? (
                    <Link to={`/replays/${r.id}`} aria-label={`Play the consultation of ${formatDateTime(replayWhen(r))}`}>
                      Play
                    </Link>
                  ) : (
                    <button
                      type="button"
                      className="link-button"
                      disabled
                      aria-label={`Play the consultation of ${formatDateTime(replayWhen(r))}`}
                      aria-describedby={PLAYBACK_OFF_ID}
                    >
                      Play
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

export function PatientReplaysPage() {
  usePageTitle('Consultation replays');
  const listOn = useFeatureOn('replay_list');
  return (
    <>
      <h1>Consultation replays</h1>
      <p>Consultations you agreed to have recorded. Only you and your GP can play them.</p>
      {listOn ? <PatientReplayList /> : <FeatureOffNotice feature="replay_list" recheck />}
    </>
  );
}

function PatientReplayList() {
  const { result, reload } = useApi(listReplays);
  return (
    <>
      <LoadedContent result={result} what="your replays" onRetry={reload}>
        {({ replays }) =>
          replays.length === 0 ? (
            <p className="empty-state">You have no recorded consultations.</p>
          ) : (
            <ReplayTable replays={replays} caption="Your recorded consultations" who="clinician" />
          )
        }
      </LoadedContent>
      <p className="muted">A recording appears here a few moments after the consultation ends.</p>
      <p>
        <button type="button" className="link-button" onClick={reload}>
          Refresh the list
        </button>
      </p>
    </>
  );
}
