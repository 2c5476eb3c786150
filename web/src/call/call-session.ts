import {
  ApiError,
  answerModeSwitch,
  decideRecordingConsent,
  endConsultation,
  errorMessage,
  finishRecording,
  getConsultation,
  requestModeSwitch,
  requestRecordingConsent,
  startConsultation,
  startRecording,
} from '../api';
import type { ConsentDecision, Consultation, ConsultationMode, Presence, ServerSignal } from '../api-types';
import { missingCallSupport, type MissingCallSupport } from './call-support';
import { ChunkUploader, type UploadState } from './chunk-uploader';
import { CallPeer } from './peer';
import { ConsultationRecorder, canRecord } from './recorder';
import { CALLS_SWITCHED_OFF, Signalling, type SignallingState } from './signalling';

export type RecorderView =
  | { status: 'idle' }
  | { status: 'starting' }
  | { status: 'recording'; recordingId: string; upload: UploadState | null }
  | { status: 'stopping' }
  | { status: 'stopped'; message: string | null };

export interface CallView {
  consultation: Consultation | null;
  /** The consultation could not be loaded at all. */
  loadError: string | null;
  connection: SignallingState;
  peerState: RTCPeerConnectionState | 'none';
  /** Who is connected now, as the signalling server says. */
  presence: Presence;
  /** What the other side says it is sending (muted, camera off). */
  other: { audio: boolean; video: boolean };
  micOn: boolean;
  micProblem: string | null;
  /** Whether you want your camera on while the call is in video. */
  cameraOn: boolean;
  cameraProblem: string | null;
  localVideo: MediaStream | null;
  remoteAudio: MediaStream | null;
  remoteVideo: MediaStream | null;
  recorder: RecorderView;
  /** The last action that failed, in words. */
  notice: string | null;
  /** This browser cannot take part in the call (no WebRTC, or no access to a microphone and camera). */
  unsupported: MissingCallSupport | null;
  /** The other side said no to your request to switch to video (until you ask again, or the call changes mode). */
  videoDeclined: boolean;
  busy: boolean;
  /** The patient left the call (they may rejoin). */
  left: boolean;
}

export interface CallElements {
  remoteVideo: HTMLVideoElement | null;
  localVideo: HTMLVideoElement | null;
}

const RESTART_MIN_INTERVAL_MS = 4_000;
const OFFER_DEBOUNCE_MS = 250;
const FINISH_TIMEOUT_MS = 20_000;

/**
 * Everything that happens in one consultation page: the consultation's state (refetched whenever
 * the server says it changed), the signalling connection, the WebRTC peer, your microphone and
 * camera, and (clinician) the recording. The page renders `view` and calls the actions.
 */
export class CallSession {
  view: CallView;
  private readonly listeners = new Set<() => void>();
  private signalling: Signalling | null = null;
  private peer: CallPeer | null = null;
  private mic: MediaStream | null = null;
  private camera: MediaStream | null = null;
  private cameraPending: Promise<void> | null = null;
  private offerTimer: ReturnType<typeof setTimeout> | undefined;
  private lastRestart = 0;
  private fetching = false;
  private fetchAgain = false;
  private disposed = false;
  /** Set once this page has left the call: nothing may open the microphone or camera after that. */
  private hungUp = false;
  private recorder: ConsultationRecorder | null = null;
  private uploader: ChunkUploader | null = null;
  private recordingId: string | null = null;
  private stopping: Promise<void> | null = null;
  private askedVideoConsent = false;

  constructor(
    private readonly consultationId: string,
    private readonly elements: () => CallElements,
  ) {
    this.view = {
      consultation: null,
      loadError: null,
      connection: { status: 'connecting' },
      peerState: 'none',
      presence: { patient: false, clinician: false },
      other: { audio: true, video: true },
      micOn: true,
      micProblem: null,
      cameraOn: true,
      cameraProblem: null,
      localVideo: null,
      remoteAudio: null,
      remoteVideo: null,
      recorder: { status: 'idle' },
      notice: null,
      unsupported: null,
      videoDeclined: false,
      busy: false,
      left: false,
    };
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private set(patch: Partial<CallView>) {
    if (this.disposed) return;
    this.view = { ...this.view, ...patch };
    for (const l of this.listeners) l();
  }

  private get role() {
    return this.view.consultation?.you;
  }

  async open(): Promise<void> {
    let consultation: Consultation;
    try {
      consultation = await getConsultation(this.consultationId);
    } catch (error) {
      this.set({ loadError: errorMessage(error) });
      return;
    }
    if (this.disposed) return;
    // Without these the call could never connect: say so (rather than "Connecting…" for ever),
    // and open no microphone or camera.
    const unsupported = consultation.status === 'ended' ? null : missingCallSupport();
    if (unsupported) {
      this.hungUp = true;
      this.set({ unsupported });
    }
    this.apply(consultation);
    if (consultation.status === 'ended' || unsupported) return;

    this.peer = new CallPeer({
      role: consultation.you,
      iceServers: consultation.rtc.iceServers,
      send: (data) => this.signalling?.send({ type: 'signal', data }) ?? false,
      onRemoteTrack: (kind, stream) => {
        this.set(kind === 'audio' ? { remoteAudio: stream } : { remoteVideo: stream });
        this.recorder?.updateAudio();
      },
      onConnectionState: (state) => this.set({ peerState: state }),
      onFailed: () => this.recoverConnection(),
    });
    // A camera opened while the peer was being made (a reload during a video call).
    if (this.camera) this.peer.setCamera(this.camera.getVideoTracks()[0] ?? null);
    void this.openMicrophone();
    this.signalling = new Signalling({
      consultationId: this.consultationId,
      onMessage: (m) => this.onSignal(m),
      onState: (state) => {
        this.set({ connection: state });
        if (state.status === 'closed') {
          // Signed out, not ours, ended, taken over by another tab, or calls switched off: this page leaves the call.
          this.hangUp();
          void this.refresh();
        }
      },
      beforeReconnect: () => this.whyNotReconnect(),
    });
    this.signalling.connect();
  }

  private async openMicrophone() {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
      if (this.disposed || this.hungUp) return stopAll(stream);
      this.mic = stream;
      const track = stream.getAudioTracks()[0] ?? null;
      if (track) track.enabled = this.view.micOn;
      this.peer?.setMic(track);
      this.recorder?.updateAudio();
      this.set({ micProblem: null });
      this.sendMedia();
    } catch {
      this.set({ micProblem: 'We could not use your microphone. Check that this site may use it, then reload the page.' });
    }
  }

  private async whyNotReconnect(): Promise<string | null> {
    try {
      // The reconnect loop has its own backoff: one try each time.
      const c = await getConsultation(this.consultationId, { retry: false });
      this.apply(c);
      return c.status === 'ended' ? 'The consultation has ended.' : null;
    } catch (error) {
      if (error instanceof ApiError && (error.status === 404 || error.status === 401)) return errorMessage(error);
      // The socket was refused because calls are switched off: say so rather than retry until they are back.
      if (error instanceof ApiError && error.code === 'feature_disabled') return CALLS_SWITCHED_OFF;
      return null;
    }
  }

  private onSignal(m: ServerSignal) {
    switch (m.type) {
      case 'welcome': {
        this.set({ presence: m.presence });
        this.sendMedia();
        // Whatever changed while we were not connected.
        void this.refresh();
        const c = this.view.consultation;
        if (c?.status !== 'live') break;
        if (m.you === 'clinician' && m.presence.patient) this.scheduleOffer();
        if (m.you === 'patient' && m.presence.clinician && this.peer?.state !== 'connected') this.askForOffer();
        break;
      }
      case 'presence': {
        const before = this.view.presence;
        this.set({ presence: m.presence });
        const otherBefore = this.role === 'clinician' ? before.patient : before.clinician;
        const otherNow = this.role === 'clinician' ? m.presence.patient : m.presence.clinician;
        if (!otherBefore && otherNow) {
          this.sendMedia();
          if (this.role === 'clinician' && this.view.consultation?.status === 'live') this.scheduleOffer();
        }
        break;
      }
      case 'signal':
        if (m.data.kind === 'restart') {
          if (this.role === 'clinician' && this.view.consultation?.status === 'live') this.scheduleOffer();
        } else {
          void this.peer?.handle(m.data);
        }
        break;
      case 'media':
        this.set({ other: { audio: m.audio, video: m.video } });
        // The clinician's page also says this when a recording starts or stops, which the server
        // does not announce with `changed`: look again, so the patient sees it at once.
        void this.refresh();
        break;
      case 'changed':
        void this.refresh();
        break;
      default:
        break;
    }
  }

  /** Clinician: a fresh offer, once, however many reasons arrive together. */
  private scheduleOffer() {
    clearTimeout(this.offerTimer);
    this.offerTimer = setTimeout(() => {
      if (this.disposed || this.view.consultation?.status !== 'live') return;
      void this.peer?.offer().catch(() => undefined);
    }, OFFER_DEBOUNCE_MS);
  }

  /** Patient: ask the clinician for a new offer (not too often). */
  private askForOffer() {
    const now = Date.now();
    if (now - this.lastRestart < RESTART_MIN_INTERVAL_MS) return;
    this.lastRestart = now;
    this.signalling?.send({ type: 'signal', data: { kind: 'restart' } });
  }

  private recoverConnection() {
    if (this.view.consultation?.status !== 'live') return;
    if (this.role === 'clinician') {
      if (this.view.presence.patient) this.scheduleOffer();
    } else if (this.view.presence.clinician) {
      this.askForOffer();
    }
  }

  /** Fetches the consultation again; calls that overlap are folded into one more fetch. */
  async refresh(): Promise<void> {
    if (this.fetching) {
      this.fetchAgain = true;
      return;
    }
    this.fetching = true;
    try {
      do {
        this.fetchAgain = false;
        const c = await getConsultation(this.consultationId);
        this.apply(c);
      } while (this.fetchAgain && !this.disposed);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) this.set({ loadError: errorMessage(error) });
    } finally {
      this.fetching = false;
    }
  }

  /** Brings the call in line with the consultation as the server has it now. */
  private apply(c: Consultation) {
    if (this.disposed) return;
    const before = this.view.consultation;
    this.set({ consultation: c, videoDeclined: videoDeclined(c) });
    if (c.status === 'ended') {
      this.hangUp();
      return;
    }
    if (c.mode === 'video' && this.view.cameraOn) void this.openCamera();
    if (c.mode === 'audio') {
      this.closeCamera();
      this.askedVideoConsent = false;
    }
    if (before && before.status !== 'live' && c.status === 'live' && c.you === 'clinician' && this.view.presence.patient) {
      this.scheduleOffer();
    }
    if (c.you === 'clinician') this.followRecordingRules(c);
  }

  private followRecordingRules(c: Consultation) {
    if (!this.recorder || this.stopping) return;
    const ours = c.recording && c.recording.id === this.recordingId ? c.recording : null;
    if (c.consent.audio !== 'granted' || (ours && ours.status !== 'recording')) {
      void this.stopRecording('The patient stopped the recording.');
      return;
    }
    // Switching to video while recording: ask whether the pictures may be recorded too.
    if (c.mode === 'video' && !this.askedVideoConsent && c.consent.video !== 'granted' && c.consent.video !== 'requested') {
      this.askedVideoConsent = true;
      void this.act(() => requestRecordingConsent(this.consultationId, 'video'));
    }
  }

  private async openCamera() {
    if (this.camera || this.cameraPending || this.hungUp) return;
    this.cameraPending = (async () => {
      try {
        const stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
        const c = this.view.consultation;
        // The call may have gone back to audio while the camera was starting.
        if (this.disposed || this.hungUp || !c || c.mode !== 'video' || !this.view.cameraOn || c.status === 'ended') return stopAll(stream);
        this.camera = stream;
        this.peer?.setCamera(stream.getVideoTracks()[0] ?? null);
        this.set({ localVideo: stream, cameraProblem: null });
        this.sendMedia();
      } catch {
        this.set({ cameraProblem: 'We could not use your camera. The call carries on with sound only from your side.' });
      } finally {
        this.cameraPending = null;
      }
    })();
    return this.cameraPending;
  }

  private closeCamera() {
    if (!this.camera) return;
    this.peer?.setCamera(null);
    stopAll(this.camera);
    this.camera = null;
    this.set({ localVideo: null });
    this.sendMedia();
  }

  private sendMedia() {
    this.signalling?.send({
      type: 'media',
      audio: this.view.micOn && !!this.mic,
      video: !!this.camera,
    });
  }

  // Actions ------------------------------------------------------------------------------------

  /** Runs a request that answers with the consultation; shows its error if it fails. */
  private async act(call: () => Promise<Consultation>): Promise<boolean> {
    this.set({ busy: true, notice: null });
    try {
      this.apply(await call());
      return true;
    } catch (error) {
      this.set({ notice: errorMessage(error) });
      void this.refresh();
      return false;
    } finally {
      this.set({ busy: false });
    }
  }

  toggleMic(): void {
    const micOn = !this.view.micOn;
    for (const t of this.mic?.getAudioTracks() ?? []) t.enabled = micOn;
    this.set({ micOn });
    this.sendMedia();
  }

  toggleCamera(): void {
    const cameraOn = !this.view.cameraOn;
    this.set({ cameraOn });
    if (!cameraOn) this.closeCamera();
    else if (this.view.consultation?.mode === 'video') void this.openCamera();
  }

  start = () => this.act(() => startConsultation(this.consultationId));
  /**
   * Asking for video, or agreeing to it ("Your camera will turn on"), is choosing to be seen: the
   * camera comes on with the switch even if you had turned it off in an earlier video period.
   */
  requestMode = (mode: ConsultationMode) => {
    if (mode === 'video') this.set({ cameraOn: true, videoDeclined: false });
    return this.act(() => requestModeSwitch(this.consultationId, mode));
  };
  answerMode = (requestId: string, accept: boolean) => {
    const pending = this.view.consultation?.pendingModeRequest;
    if (accept && pending?.id === requestId && pending.toMode === 'video') this.set({ cameraOn: true });
    return this.act(() => answerModeSwitch(this.consultationId, requestId, accept));
  };
  askToRecord = (media: ConsultationMode) => this.act(() => requestRecordingConsent(this.consultationId, media));
  decideConsent = (media: ConsultationMode, decision: ConsentDecision) =>
    this.act(() => decideRecordingConsent(this.consultationId, media, decision));

  /** Clinician: records the call (the patient has agreed to audio). */
  async startRecording(): Promise<void> {
    if (this.recorder || this.stopping) return;
    if (!canRecord()) {
      this.set({ notice: 'This browser cannot record the consultation. Use an up-to-date Chrome, Edge or Firefox.' });
      return;
    }
    this.set({ recorder: { status: 'starting' }, notice: null });
    try {
      const upload = await startRecording(this.consultationId);
      const recordingId = upload.id;
      const uploader = new ChunkUploader(
        recordingId,
        (state) => {
          if (this.recordingId === recordingId && this.view.recorder.status === 'recording') {
            this.set({ recorder: { status: 'recording', recordingId, upload: state } });
          }
          if (state.status === 'closed' || state.status === 'failed') void this.stopRecording(state.message);
        },
        upload.nextSeq,
      );
      const recorder = new ConsultationRecorder(
        {
          localAudio: () => this.mic,
          remoteAudio: () => this.view.remoteAudio,
          patientVideo: () => this.elements().remoteVideo,
          clinicianVideo: () => this.elements().localVideo,
          // What the patient's page says it sends; the clinician's own camera is open or not.
          patientCameraOn: () => this.view.other.video,
          clinicianCameraOn: () => !!this.camera,
          patientName: () => this.view.consultation?.patient.displayName ?? 'Patient',
          clinicianName: () => this.view.consultation?.clinician.displayName ?? 'Clinician',
          videoAllowed: () => {
            const c = this.view.consultation;
            return !!c && c.mode === 'video' && c.consent.video === 'granted';
          },
        },
        (chunk) => uploader.push(chunk),
        (message) => void this.stopRecording(message),
      );
      this.recorder = recorder;
      this.uploader = uploader;
      this.recordingId = recordingId;
      recorder.start();
      this.set({ recorder: { status: 'recording', recordingId, upload: null } });
      await this.refresh();
      this.sendMedia();
    } catch (error) {
      this.set({ recorder: { status: 'idle' }, notice: errorMessage(error) });
    }
  }

  /** Stops the recorder, waits for the last chunk to reach the server, then finishes the recording. */
  stopRecording(message: string | null = null): Promise<void> {
    if (this.stopping) return this.stopping;
    const recorder = this.recorder;
    const uploader = this.uploader;
    const recordingId = this.recordingId;
    if (!recorder || !uploader || !recordingId) return Promise.resolve();
    this.set({ recorder: { status: 'stopping' } });
    this.stopping = (async () => {
      try {
        await recorder.stop();
        const result = await withTimeout(uploader.drain(), FINISH_TIMEOUT_MS);
        if (result?.status === 'failed') message ??= 'Part of the recording could not be uploaded.';
        await finishRecording(recordingId).catch(() => undefined);
      } finally {
        this.recorder = null;
        this.uploader = null;
        this.stopping = null;
        this.set({ recorder: { status: 'stopped', message } });
        if (!this.disposed) void this.refresh().then(() => this.sendMedia());
      }
    })();
    return this.stopping;
  }

  /** Clinician: ends the consultation for both sides (the recording is finished first). */
  async end(): Promise<boolean> {
    await this.stopRecording();
    return this.act(() => endConsultation(this.consultationId));
  }

  /** Patient: leaves the call; they may join again while it lasts. */
  leave(): void {
    this.hangUp();
    this.set({ left: true });
  }

  /** Closes the connections and turns off the microphone and camera. */
  private hangUp() {
    this.hungUp = true;
    clearTimeout(this.offerTimer);
    this.signalling?.close();
    this.signalling = null;
    this.peer?.close();
    this.peer = null;
    if (this.recorder) void this.stopRecording();
    if (this.mic) stopAll(this.mic);
    this.mic = null;
    if (this.camera) stopAll(this.camera);
    this.camera = null;
    this.set({ localVideo: null, remoteAudio: null, remoteVideo: null, peerState: 'closed' });
  }

  /** The page is going away: hang up; a recording in progress is still finished in the background. */
  dispose(): void {
    this.hangUp();
    this.disposed = true;
    this.listeners.clear();
  }
}

function stopAll(stream: MediaStream) {
  for (const t of stream.getTracks()) t.stop();
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([promise, new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The server says our last request to switch to video was declined, and the call is still live
 * in audio with nothing newer asked: the one who asked is told until they ask again.
 */
function videoDeclined(c: Consultation): boolean {
  const last = c.lastModeAnswer;
  return (
    c.status === 'live' &&
    c.mode === 'audio' &&
    !c.pendingModeRequest &&
    last !== null &&
    last.status === 'declined' &&
    last.toMode === 'video' &&
    last.requestedBy === c.you
  );
}
