import { useEffect, useRef, useState } from 'react';
import { Link, useParams } from 'react-router';
import { ApiError, getReplay, replayMediaUrl } from '../api';
import type { Replay } from '../api-types';
import { ConsultationNotesSection } from '../components/consultation-notes';
import { FeatureOffNotice } from '../components/feature-off';
import { LoadedContent } from '../components/loading';
import { LocalTime } from '../components/local-time';
import { usePageTitle } from '../components/page-title';
import { useSignedIn } from '../session';
import { useFeatureStatus } from '../feature-status';
import { useApi } from '../use-api';
import { formatDuration } from '../format';
import { NotFoundPage } from './not-found';
import { replayWhen } from './patient-replays';

type ReplayLookup = { found: true; replay: Replay } | { found: false };

/** The replay, or "not found": missing, someone else's (the server answers both alike) or a malformed link. */
async function findReplay(recordingId: string): Promise<ReplayLookup> {
  try {
    return { found: true, replay: await getReplay(recordingId) };
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.code === 'validation_failed')) return { found: false };
    throw error;
  }
}

interface PlaybackFailure {
  reason: string;
  /** The browser's own code and words, for the practice if the patient gets in touch. */
  detail: string;
}

/** Why the media element gave up, in words. Chromium also says "format not supported" when the download itself failed. */
function playbackFailure(error: MediaError | null): PlaybackFailure {
  const detail = error ? `error ${error.code}${error.message ? `: ${error.message}` : ''}` : 'no error code';
  switch (error?.code) {
    case MediaError.MEDIA_ERR_ABORTED:
      return { reason: 'Loading the recording stopped before it could play.', detail };
    case MediaError.MEDIA_ERR_NETWORK:
      return { reason: 'The recording stopped loading: the connection to Confidant was interrupted.', detail };
    case MediaError.MEDIA_ERR_DECODE:
      return { reason: 'This browser could not decode the recording.', detail };
    default:
      return { reason: 'This browser could not play the recording: it may not support its format (WebM), or the recording did not load.', detail };
  }
}

/**
 * A failed replay may be followed by playback being switched off (damage found in a recording
 * switches it off within a second): look now, and once more a moment later.
 */
const SECOND_LOOK_MS = 1_500;

function Player({ replay, clinician }: { replay: Replay; clinician: boolean }) {
  const video = useRef<HTMLVideoElement>(null);
  const [failure, setFailure] = useState<PlaybackFailure | null>(null);
  const { isOn, refresh } = useFeatureStatus();
  const playbackOn = isOn('replay_playback');
  const secondLook = useRef<ReturnType<typeof setTimeout>>(undefined);

  // Switched off: when it comes back on, the player starts afresh.
  useEffect(() => {
    if (!playbackOn) setFailure(null);
  }, [playbackOn]);
  useEffect(() => () => clearTimeout(secondLook.current), []);

  function failed(error: MediaError | null) {
    setFailure(playbackFailure(error));
    // The media element cannot read the server's answer: ask whether playback was switched off.
    void refresh();
    clearTimeout(secondLook.current);
    secondLook.current = setTimeout(() => void refresh(), SECOND_LOOK_MS);
  }

  function tryAgain() {
    setFailure(null);
    video.current?.load();
  }

  return (
    <>
      <h1>Consultation of <LocalTime iso={replayWhen(replay)} /></h1>
      {playbackOn ? (
        <video
          ref={video}
          className="replay__video"
          controls
          preload="metadata"
          src={replayMediaUrl(replay.id)}
          aria-label="Consultation recording"
          hidden={!!failure}
          onError={(event) => failed(event.currentTarget.error)}
        >
          Your browser cannot play this recording.
        </video>
      ) : (
        <FeatureOffNotice feature="replay_playback" recheck />
      )}
      {failure && playbackOn ? (
        <div className="notice notice--error replay__failure" role="alert">
          <p>
            <strong>The recording cannot be played.</strong> {failure.reason}
          </p>
          <p>What you can do:</p>
          <ul>
            <li>Try again.</li>
            <li>Open this page in an up-to-date Chrome, Edge or Firefox.</li>
            <li>
              {clinician
                ? 'If it still does not play, contact your IT support.'
                : 'If it still does not play, contact the practice: they can help you hear the recording.'}
            </li>
          </ul>
          <p className="muted">Details for the practice: {failure.detail}</p>
          <button type="button" className="button button--secondary" onClick={tryAgain}>
            Try again
          </button>
        </div>
      ) : null}
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
  const { result, reload } = useApi(() => findReplay(recordingId), [recordingId]);
  const notFound = result.status === 'ok' && !result.data.found;
  usePageTitle(notFound ? 'We could not find that replay' : 'Consultation replay');
  const list = clinician
    ? { to: '/clinician/replays', label: 'All recorded consultations' }
    : { to: '/patient/replays', label: 'All consultation replays' };

  // Nothing to try again: the replay is not there for this account.
  if (notFound) {
    return (
      <NotFoundPage title="We could not find that replay" back={list}>
        <p>It may have been removed, or the link may be wrong.</p>
        <p>{clinician ? 'The consultations you recorded are listed under Recorded consultations.' : 'Your replays are listed under Consultation replays.'}</p>
      </NotFoundPage>
    );
  }
  return (
    <>
      {result.status === 'error' ? <h1>Consultation replay</h1> : null}
      <LoadedContent result={result} what="the recording" onRetry={reload}>
        {(found) => (found.found ? <Player replay={found.replay} clinician={clinician} /> : null)}
      </LoadedContent>
      <p className="after-form">
        <Link to={list.to}>{list.label}</Link>
      </p>
    </>
  );
}
