import { useCallback, useEffect, useId, useRef, useState, useSyncExternalStore } from 'react';
import type { ReactNode, RefObject } from 'react';
import { Link, useParams } from 'react-router';
import { errorMessage, getConsultationNotes, saveConsultationNotes } from '../api';
import type { Consultation } from '../api-types';
import { CallSession, type CallView } from '../call/call-session';
import type { MissingCallSupport } from '../call/call-support';
import { ConfirmDialog } from '../components/confirm-dialog';
import { ConsultationNotesSection } from '../components/consultation-notes';
import { FeatureOffNotice } from '../components/feature-off';
import { Loading } from '../components/loading';
import { LocalTime } from '../components/local-time';
import { usePageTitle } from '../components/page-title';
import { useFeatureOn } from '../feature-status';
import { formatTimeOfDay, modeLabel } from '../format';

const NOTES_MAX = 20_000;
/** Notices that greyed call controls point to. */
const MODE_SWITCH_OFF_ID = 'mode-switch-off';
const RECORDING_OFF_ID = 'recording-off';
const NOTES_OFF_ID = 'notes-off';

/** Plays a stream in a media element; only ever a stream that has tracks (an empty one stalls the page). */
function useStream(ref: RefObject<HTMLMediaElement | null>, stream: MediaStream | null) {
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    if (!stream) {
      if (el.srcObject) el.srcObject = null;
      return;
    }
    if (el.srcObject !== stream) {
      el.srcObject = stream;
      el.play().catch(() => undefined);
    }
  }, [ref, stream]);
}

function otherName(c: Consultation): string {
  return c.you === 'patient' ? c.clinician.displayName : c.patient.displayName;
}

/** A question the other side asked, answered in a modal dialog: "Agree" / "Not now". */
function QuestionDialog({
  title,
  children,
  yes,
  no,
  busy,
  onAnswer,
}: {
  title: string;
  children: ReactNode;
  yes: string;
  no: string;
  busy: boolean;
  onAnswer: (yes: boolean) => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const safeButton = useRef<HTMLButtonElement>(null);
  const titleId = useId();
  const bodyId = useId();
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    // A stray Enter must not turn a camera on or start a recording: "no" has the focus.
    safeButton.current?.focus();
    return () => dialog?.close();
  }, []);
  return (
    <dialog
      ref={ref}
      className="dialog dialog--question"
      aria-labelledby={titleId}
      aria-describedby={bodyId}
      onCancel={(event) => {
        event.preventDefault();
        if (!busy) onAnswer(false);
      }}
    >
      <h2 id={titleId} className="dialog__title">
        {title}
      </h2>
      <div id={bodyId}>{children}</div>
      <div className="button-row">
        <button type="button" className="button" onClick={() => onAnswer(true)} disabled={busy}>
          {yes}
        </button>
        <button type="button" className="button button--secondary" ref={safeButton} onClick={() => onAnswer(false)} disabled={busy}>
          {no}
        </button>
      </div>
    </dialog>
  );
}

/** What the other side is waiting for you to answer, one question at a time. */
function Questions({ session, view, c }: { session: CallSession; view: CallView; c: Consultation }) {
  const other = otherName(c);
  const pending = c.pendingModeRequest;
  if (c.status !== 'live') return null;
  if (pending && pending.requestedBy !== c.you && pending.toMode === 'video') {
    return (
      <QuestionDialog
        key={`mode-${pending.id}`}
        title={`${other} asks to switch to video`}
        yes="Agree"
        no="Not now"
        busy={view.busy}
        onAnswer={(yes) => void session.answerMode(pending.id, yes)}
      >
        <p>
          {other} asks to switch to video. Your camera will turn on. You can switch back to sound only at any time.
        </p>
      </QuestionDialog>
    );
  }
  if (c.you === 'patient' && c.consent.audio === 'requested') {
    return (
      <QuestionDialog
        key="consent-audio"
        title={`${other} asks to record this consultation (sound only)`}
        yes="Allow"
        no="Don't allow"
        busy={view.busy}
        onAnswer={(yes) => void session.decideConsent('audio', yes ? 'granted' : 'declined')}
      >
        <p>
          {other} asks to record this consultation (sound only). You can listen to the recording later under
          Consultation replays, and you can stop the recording at any time.
        </p>
      </QuestionDialog>
    );
  }
  if (c.you === 'patient' && c.consent.video === 'requested') {
    return (
      <QuestionDialog
        key="consent-video"
        title={`${other} asks to record video too`}
        yes="Allow"
        no="Don't allow"
        busy={view.busy}
        onAnswer={(yes) => void session.decideConsent('video', yes ? 'granted' : 'declined')}
      >
        <p>
          The call is now in video. {other} asks to record video too: the pictures of both of you would be kept with
          the sound. If you do not allow it, only the sound is recorded.
        </p>
      </QuestionDialog>
    );
  }
  return null;
}

function RecordingIndicator({ c }: { c: Consultation }) {
  // Consent withdrawn stops the recording; the server closes it a moment later.
  if (c.recording?.status !== 'recording' || c.consent.audio !== 'granted') return null;
  const video = c.consent.video === 'granted' && c.mode === 'video';
  return (
    <p className="recording-indicator" role="status">
      <span className="recording-indicator__dot" aria-hidden="true">
        ●
      </span>{' '}
      Recording <span className="recording-indicator__what">{video ? 'video recorded' : 'sound only'}</span>
    </p>
  );
}

function connectionLine(view: CallView, c: Consultation): string {
  const other = otherName(c);
  const conn = view.connection;
  if (conn.status === 'closed') return conn.reason;
  if (conn.status === 'reconnecting') return 'Connection lost. Reconnecting…';
  if (conn.status === 'connecting') return 'Connecting…';
  if (c.status === 'waiting') {
    if (c.you === 'patient') return `You are in the waiting room. ${c.clinician.displayName} will start the consultation.`;
    return view.presence.patient ? `${other} is in the waiting room.` : `${other} has not joined yet.`;
  }
  const otherHere = c.you === 'patient' ? view.presence.clinician : view.presence.patient;
  if (!otherHere) return c.you === 'patient' ? `Waiting for ${other} to connect…` : `Waiting for ${other} to join…`;
  switch (view.peerState) {
    case 'connected':
      return `Connected with ${other}.`;
    case 'failed':
    case 'disconnected':
      return `The connection with ${other} was interrupted. Reconnecting…`;
    default:
      return `Connecting the call with ${other}…`;
  }
}

function RecordingPanel({ session, view, c }: { session: CallSession; view: CallView; c: Consultation }) {
  const recordingOn = useFeatureOn('recording');
  const recording = c.recording?.status === 'recording';
  const r = view.recorder;
  if (c.you === 'patient') {
    if (!recording || c.consent.audio !== 'granted') return null;
    return (
      <div className="button-row call__recording-actions">
        <button type="button" className="button button--secondary button--danger" disabled={view.busy} onClick={() => void session.decideConsent('audio', 'withdrawn')}>
          Stop recording
        </button>
        {c.consent.video === 'granted' ? (
          <button type="button" className="button button--secondary" disabled={view.busy} onClick={() => void session.decideConsent('video', 'withdrawn')}>
            Stop recording video
          </button>
        ) : null}
      </div>
    );
  }
  const consent = c.consent.audio;
  const ours = r.status === 'recording' || r.status === 'starting' || r.status === 'stopping';
  const offBy = recordingOn ? undefined : RECORDING_OFF_ID;
  return (
    <section className="panel call__panel" aria-labelledby="recording-heading">
      <h2 id="recording-heading">Recording</h2>
      <p className="muted">
        {consent === 'granted'
          ? c.consent.video === 'granted'
            ? 'The patient agreed to sound and video being recorded.'
            : 'The patient agreed to the sound being recorded.'
          : consent === 'requested'
            ? 'Waiting for the patient to answer…'
            : consent === 'declined'
              ? 'The patient did not allow recording.'
              : consent === 'withdrawn'
                ? 'The patient stopped the recording.'
                : 'Nothing is recorded unless the patient agrees.'}
      </p>
      {r.status === 'recording' && r.upload?.status === 'retrying' ? (
        <p className="muted" role="status">
          Upload interrupted; retrying…
        </p>
      ) : null}
      {r.status === 'stopped' && r.message ? <p role="status">{r.message}</p> : null}
      {recordingOn ? null : <FeatureOffNotice feature="recording" id={RECORDING_OFF_ID} compact />}
      <div className="button-row">
        {consent !== 'granted' && consent !== 'requested' ? (
          <button
            type="button"
            className="button button--secondary"
            disabled={view.busy || !recordingOn}
            aria-describedby={offBy}
            onClick={() => void session.askToRecord('audio')}
          >
            Ask to record
          </button>
        ) : null}
        {consent === 'granted' && !ours ? (
          <button type="button" className="button" disabled={!recordingOn} aria-describedby={offBy} onClick={() => void session.startRecording()}>
            {recording ? 'Restart recording' : 'Start recording'}
          </button>
        ) : null}
        {ours ? (
          <button
            type="button"
            className="button button--secondary button--danger"
            disabled={r.status !== 'recording'}
            onClick={() => void session.stopRecording()}
          >
            {r.status === 'stopping' ? 'Saving the recording…' : r.status === 'starting' ? 'Starting…' : 'Stop recording'}
          </button>
        ) : null}
      </div>
    </section>
  );
}

function ClinicianNotes({ consultationId, notesRef }: { consultationId: string; notesRef: RefObject<NotesHandle | null> }) {
  const [body, setBody] = useState('');
  const [saved, setSaved] = useState('');
  const [status, setStatus] = useState<string>('');
  const [loaded, setLoaded] = useState(false);
  const [busy, setBusy] = useState(false);
  const notesOn = useFeatureOn('notes');

  useEffect(() => {
    let current = true;
    getConsultationNotes(consultationId).then(
      (n) => {
        if (!current) return;
        setBody(n.body);
        setSaved(n.body);
        setLoaded(true);
      },
      (e: unknown) => current && setStatus(errorMessage(e)),
    );
    return () => {
      current = false;
    };
  }, [consultationId]);

  async function save(): Promise<boolean> {
    if (!loaded || body === saved) return true;
    setBusy(true);
    try {
      const n = await saveConsultationNotes(consultationId, body);
      setSaved(n.body);
      setStatus(n.updatedAt ? `Notes saved at ${formatTimeOfDay(n.updatedAt)}.` : 'Notes saved.');
      return true;
    } catch (e) {
      setStatus(errorMessage(e));
      return false;
    } finally {
      setBusy(false);
    }
  }

  useEffect(() => {
    notesRef.current = { save };
  });
  const over = body.length > NOTES_MAX;

  return (
    <section className="panel call__panel" aria-labelledby="notes-heading">
      <h2 id="notes-heading">Consultation notes</h2>
      {notesOn ? null : <FeatureOffNotice feature="notes" id={NOTES_OFF_ID} compact />}
      <div className="field">
        <label className="field__label" htmlFor="consultation-notes">
          Notes
        </label>
        <p className="field__hint" id="consultation-notes-hint">
          The patient can read these after the consultation.
        </p>
        <textarea
          id="consultation-notes"
          className="textarea call__notes"
          aria-describedby="consultation-notes-hint"
          aria-invalid={over}
          value={body}
          disabled={!loaded}
          onChange={(e) => setBody(e.target.value)}
        />
        {over ? <p className="character-count character-count--over">Keep notes under 20,000 characters.</p> : null}
      </div>
      <div className="button-row">
        <button
          type="button"
          className="button button--secondary"
          disabled={!loaded || busy || over || body === saved || !notesOn}
          aria-describedby={notesOn ? undefined : NOTES_OFF_ID}
          onClick={() => void save()}
        >
          Save notes
        </button>
        <p role="status" className="status-line call__notes-status">
          {body !== saved && loaded ? 'Unsaved changes.' : status}
        </p>
      </div>
    </section>
  );
}

interface NotesHandle {
  save(): Promise<boolean>;
}

function CallControls({ session, view, c, onEnd }: { session: CallSession; view: CallView; c: Consultation; onEnd: () => void }) {
  const pending = c.pendingModeRequest;
  const mine = pending && pending.requestedBy === c.you;
  const switchOn = useFeatureOn('mode_switch');
  const offBy = switchOn ? undefined : MODE_SWITCH_OFF_ID;
  return (
    <>
      {switchOn || c.status !== 'live' ? null : <FeatureOffNotice feature="mode_switch" id={MODE_SWITCH_OFF_ID} compact />}
      <div className="call__controls" role="group" aria-label="Call controls">
        <button type="button" className="button button--secondary" aria-pressed={!view.micOn} onClick={() => session.toggleMic()}>
          {view.micOn ? 'Mute' : 'Unmute'}
        </button>
        {c.mode === 'video' ? (
          <button type="button" className="button button--secondary" aria-pressed={!view.cameraOn} onClick={() => session.toggleCamera()}>
            {view.cameraOn ? 'Camera off' : 'Camera on'}
          </button>
        ) : null}
        {c.status === 'live' ? (
          c.mode === 'audio' ? (
            mine ? (
              <button type="button" className="button button--secondary" disabled={view.busy} onClick={() => void session.answerMode(pending.id, false)}>
                Withdraw video request
              </button>
            ) : (
              <button
                type="button"
                className="button button--secondary"
                disabled={view.busy || !!pending || !switchOn}
                aria-describedby={offBy}
                onClick={() => void session.requestMode('video')}
              >
                Switch to video
              </button>
            )
          ) : (
            <button
              type="button"
              className="button button--secondary"
              disabled={view.busy || !switchOn}
              aria-describedby={offBy}
              onClick={() => void session.requestMode('audio')}
            >
              Switch to audio
            </button>
          )
        ) : null}
        {c.you === 'clinician' ? (
          <button type="button" className="button button--warning" disabled={view.busy} onClick={onEnd}>
            End consultation
          </button>
        ) : (
          <button type="button" className="button button--warning" onClick={() => session.leave()}>
            Hang up
          </button>
        )}
      </div>
    </>
  );
}

/**
 * What the call is now, next to the controls that change it: audio or video (the heading says
 * what was booked, which a switch does not change), and whether you are muted (in audio there is
 * no preview of yourself to say so).
 */
function CallState({ view, c }: { view: CallView; c: Consultation }) {
  return (
    <div className="call__state">
      {c.status === 'live' ? (
        <p className="call__mode" role="status">
          <span className="tag tag--blue">{c.mode === 'video' ? 'Now: video call' : 'Now: audio call'}</span>
        </p>
      ) : null}
      <p className="call__self" role="status">
        {!view.micOn ? <span className="tag tag--amber">You are muted</span> : null}
      </p>
    </div>
  );
}

function Stage({
  view,
  c,
  remoteVideo,
  localVideo,
}: {
  view: CallView;
  c: Consultation;
  remoteVideo: RefObject<HTMLVideoElement | null>;
  localVideo: RefObject<HTMLVideoElement | null>;
}) {
  const other = otherName(c);
  const video = c.mode === 'video';
  const otherMuted = !view.other.audio;
  // With their camera off, their last frame would stay frozen on screen: their initial instead.
  const showRemote = video && view.other.video;
  return (
    <div className={video ? 'call__stage call__stage--video' : 'call__stage'}>
      <div className="call__remote">
        {/* Always in the page (the recorder draws from it); shown only in video, while their camera is on. */}
        <video
          ref={remoteVideo}
          className="call__remote-video"
          hidden={!showRemote}
          autoPlay
          playsInline
          muted
          aria-label={`${other}'s video`}
        />
        {!showRemote ? (
          <div className="call__avatar" aria-hidden="true">
            {other.replace(/^Dr\.? /, '').slice(0, 1)}
          </div>
        ) : null}
        <p className="call__name">
          {other}
          {otherMuted ? <span className="tag tag--amber call__tag">Muted</span> : null}
          {video && !view.other.video ? <span className="tag tag--grey call__tag">Camera off</span> : null}
        </p>
      </div>
      <div className="call__local" hidden={!video || !view.localVideo}>
        <video ref={localVideo} className="call__local-video" autoPlay playsInline muted aria-label="Your camera" />
        <p className="call__name call__name--local">You{!view.micOn ? <span className="tag tag--amber call__tag">Muted</span> : null}</p>
      </div>
    </div>
  );
}

/** This browser cannot take part in the call: what to do instead. */
function CannotCall({ c, missing, busy, onEnd }: { c: Consultation; missing: MissingCallSupport; busy: boolean; onEnd: () => void }) {
  const other = otherName(c);
  const lacks =
    missing === 'webrtc' ? 'This browser cannot make calls' : 'This browser does not let Confidant use your microphone and camera';
  return (
    <>
      <div className="notice notice--error" role="alert">
        <p>
          <strong>{lacks}, so {c.you === 'patient' ? 'you cannot join the consultation here' : 'you cannot hold the call here'}.</strong>
        </p>
        <p>Open this page in an up-to-date Chrome, Edge, Firefox or Safari.</p>
        {c.you === 'patient' ? (
          <p>If you cannot, contact the practice and ask {other} to phone you instead.</p>
        ) : (
          <p>Or phone {other} instead: you can still write your notes here, and end the consultation when you have finished.</p>
        )}
      </div>
      {c.you === 'clinician' ? (
        <p>
          <button type="button" className="button button--warning" disabled={busy} onClick={onEnd}>
            End consultation
          </button>
        </p>
      ) : null}
    </>
  );
}

function Ended({ c }: { c: Consultation }) {
  return (
    <div className="notice notice--info" role="status">
      <p>
        The consultation has ended{c.endedAt ? <> at {formatTimeOfDay(c.endedAt)}</> : null}.
      </p>
      {c.you === 'patient' ? (
        <p>
          {c.recording ? (
            <>
              The recording appears under <Link to="/patient/replays">Consultation replays</Link> once it is ready. You can
              come back to these notes from <Link to="/patient/appointments">Your appointments</Link>.
            </>
          ) : (
            <>
              You can come back to these notes from <Link to="/patient/appointments">Your appointments</Link>.
            </>
          )}
        </p>
      ) : (
        <p>
          <Link to="/clinician">Back to today's consultations</Link>
        </p>
      )}
    </div>
  );
}

function Call({ consultationId, onRejoin }: { consultationId: string; onRejoin: () => void }) {
  const remoteVideo = useRef<HTMLVideoElement>(null);
  const localVideo = useRef<HTMLVideoElement>(null);
  const remoteAudio = useRef<HTMLAudioElement>(null);
  const notes = useRef<NotesHandle>(null);
  const [session, setSession] = useState<CallSession | null>(null);
  const [confirmingEnd, setConfirmingEnd] = useState(false);

  useEffect(() => {
    const s = new CallSession(consultationId, () => ({ remoteVideo: remoteVideo.current, localVideo: localVideo.current }));
    setSession(s);
    void s.open();
    return () => s.dispose();
  }, [consultationId]);

  const subscribe = useCallback((listener: () => void) => session?.subscribe(listener) ?? (() => undefined), [session]);
  const view = useSyncExternalStore(subscribe, () => session?.view ?? null);

  useStream(remoteAudio, view?.remoteAudio ?? null);
  useStream(remoteVideo, view?.remoteVideo ?? null);
  useStream(localVideo, view?.localVideo ?? null);

  // Leaving the page while recording would cut the recording short.
  const recording = view?.recorder.status === 'recording';
  useEffect(() => {
    if (!recording) return;
    const warn = (event: BeforeUnloadEvent) => event.preventDefault();
    window.addEventListener('beforeunload', warn);
    return () => window.removeEventListener('beforeunload', warn);
  }, [recording]);

  const c = view?.consultation ?? null;
  usePageTitle(c ? `Consultation with ${otherName(c)}` : 'Consultation');

  if (!session || !view) return <Loading label="Opening the consultation…" />;
  if (view.loadError && !c) {
    return (
      <>
        <h1>Consultation</h1>
        <div className="notice notice--error" role="alert">
          <p>{view.loadError}</p>
          <button type="button" className="button button--secondary" onClick={onRejoin}>
            Try again
          </button>
        </div>
      </>
    );
  }
  if (!c) return <Loading label="Opening the consultation…" />;

  async function end() {
    if (!session) return;
    await notes.current?.save();
    if (await session.end()) setConfirmingEnd(false);
  }

  const ended = c.status === 'ended';
  const finalClose = view.connection.status === 'closed' ? view.connection.reason : null;
  const endDialog = (
    <ConfirmDialog
      open={confirmingEnd}
      title="End the consultation?"
      confirmLabel="Yes, end it"
      cancelLabel="No, carry on"
      busy={view.busy || view.recorder.status === 'stopping'}
      error={view.notice}
      onConfirm={() => void end()}
      onClose={() => setConfirmingEnd(false)}
    >
      <p>
        The call closes for both of you{c.recording?.status === 'recording' ? ' and the recording is saved' : ''}. Your
        notes are saved first.
      </p>
    </ConfirmDialog>
  );

  return (
    <div className="call">
      <h1>Consultation with {otherName(c)}</h1>
      <p className="muted call__meta">
        {modeLabel(c.bookedMode)} appointment booked for <LocalTime iso={c.startsAt} />
        {c.startedAt && !ended ? <> · started at {formatTimeOfDay(c.startedAt)}</> : null}
      </p>
      <RecordingIndicator c={c} />
      {view.notice ? (
        <div className="notice notice--error" role="alert">
          <p>{view.notice}</p>
        </div>
      ) : null}
      {ended ? (
        <>
          <Ended c={c} />
          {c.you === 'patient' ? <ConsultationNotesSection consultationId={c.id} author={c.clinician.displayName} /> : null}
        </>
      ) : view.unsupported ? (
        <>
          <CannotCall c={c} missing={view.unsupported} busy={view.busy} onEnd={() => setConfirmingEnd(true)} />
          {endDialog}
        </>
      ) : finalClose ? (
        <div className="notice notice--error" role="alert">
          <p>{finalClose}</p>
          <button type="button" className="button button--secondary" onClick={onRejoin}>
            Reconnect here
          </button>
        </div>
      ) : view.left ? (
        <div className="notice notice--info" role="status">
          <p>You have left the consultation. You can join again while it lasts.</p>
          <button type="button" className="button" onClick={onRejoin}>
            Rejoin
          </button>
        </div>
      ) : (
        <>
          <p className="call__status" role="status">
            {connectionLine(view, c)}
          </p>
          {view.micProblem ? <p className="field__error">{view.micProblem}</p> : null}
          {view.cameraProblem ? <p className="field__error">{view.cameraProblem}</p> : null}
          {c.you === 'clinician' && c.status === 'waiting' ? (
            <p>
              <button type="button" className="button" disabled={view.busy} onClick={() => void session.start()}>
                Start consultation
              </button>
            </p>
          ) : null}
          {c.pendingModeRequest && c.pendingModeRequest.requestedBy === c.you ? (
            <p className="muted" role="status">
              Waiting for {otherName(c)} to agree to switch to video…
            </p>
          ) : null}
          {/* Always in the page, so that the answer is announced when it arrives. */}
          <div role="status" className="call__answer">
            {view.videoDeclined && c.status === 'live' ? (
              <div className="notice notice--info">
                <p>
                  {otherName(c)} declined video. The call stays audio-only.
                </p>
              </div>
            ) : null}
          </div>
          <Stage view={view} c={c} remoteVideo={remoteVideo} localVideo={localVideo} />
          <audio ref={remoteAudio} autoPlay hidden />
          <CallState view={view} c={c} />
          <CallControls session={session} view={view} c={c} onEnd={() => setConfirmingEnd(true)} />
          {c.status === 'live' ? <RecordingPanel session={session} view={view} c={c} /> : null}
          <Questions session={session} view={view} c={c} />
          {endDialog}
        </>
      )}
      {c.you === 'clinician' ? <ClinicianNotes consultationId={c.id} notesRef={notes} /> : null}
    </div>
  );
}

export function ConsultationCallPage() {
  const { consultationId = '' } = useParams();
  const [attempt, setAttempt] = useState(0);
  return <Call key={`${consultationId}-${attempt}`} consultationId={consultationId} onRejoin={() => setAttempt((a) => a + 1)} />;
}
