export const RECORDING_MIME_TYPE = 'video/webm;codecs=vp8,opus';

const WIDTH = 640;
const HEIGHT = 360;
const FPS = 15;
const TIMESLICE_MS = 1_000;

export interface RecorderSources {
  /** The clinician's microphone. */
  localAudio(): MediaStream | null;
  /** The patient's voice as it arrives over the call. */
  remoteAudio(): MediaStream | null;
  patientVideo(): HTMLVideoElement | null;
  clinicianVideo(): HTMLVideoElement | null;
  /**
   * Whether each camera is on now. A <video> element keeps showing the last frame it was given
   * after its camera stops (the patient turned theirs off), so this says, not the element.
   */
  patientCameraOn(): boolean;
  clinicianCameraOn(): boolean;
  /** Names, for the initial drawn in place of a camera that is off. */
  patientName(): string;
  clinicianName(): string;
  /** Whether pictures may be recorded now: the call is in video and the patient agreed to video. */
  videoAllowed(): boolean;
}

/** Whether this browser can record a consultation the way the server expects it. */
export function canRecord(): boolean {
  return typeof MediaRecorder !== 'undefined' && MediaRecorder.isTypeSupported(RECORDING_MIME_TYPE);
}

/**
 * Records the consultation in the clinician's browser: the sound is both sides mixed with Web
 * Audio; the picture is a canvas on which both videos are drawn only while video may be
 * recorded, and a plain "Audio only" frame otherwise. A side whose camera is off is drawn as
 * the call page shows it (their initial and "Camera off"), never as the last picture it sent.
 * The video track never changes, so the whole recording is one continuous WebM file, delivered
 * in ~1 s chunks.
 */
export class ConsultationRecorder {
  private readonly canvas = document.createElement('canvas');
  private readonly context2d: CanvasRenderingContext2D;
  private readonly audio = new AudioContext();
  private readonly mix = this.audio.createMediaStreamDestination();
  private readonly inputs = new Map<string, MediaStreamAudioSourceNode>();
  private readonly recorder: MediaRecorder;
  private readonly canvasTrack: MediaStreamTrack;
  private drawTimer: ReturnType<typeof setInterval> | undefined;
  private stopping: Promise<void> | null = null;

  constructor(
    private readonly sources: RecorderSources,
    onChunk: (chunk: Blob) => void,
    onError: (message: string) => void,
  ) {
    this.canvas.width = WIDTH;
    this.canvas.height = HEIGHT;
    // Opaque: otherwise Chrome records a VP8 alpha channel with every frame.
    const ctx = this.canvas.getContext('2d', { alpha: false });
    if (!ctx) throw new Error('no 2d canvas');
    this.context2d = ctx;
    this.draw();
    const track = this.canvas.captureStream(FPS).getVideoTracks()[0];
    if (!track) throw new Error('the canvas gave no video track');
    this.canvasTrack = track;
    this.updateAudio();
    const mixed = new MediaStream([track, ...this.mix.stream.getAudioTracks()]);
    // A keyframe every 2 s: a replay seeks from the keyframe before the target, and Chrome
    // otherwise spaces them far apart (the finaliser writes one cue per keyframe).
    const options: MediaRecorderOptions & { videoKeyFrameIntervalDuration?: number } = {
      mimeType: RECORDING_MIME_TYPE,
      videoBitsPerSecond: 600_000,
      audioBitsPerSecond: 64_000,
      videoKeyFrameIntervalDuration: 2_000,
    };
    this.recorder = new MediaRecorder(mixed, options);
    this.recorder.ondataavailable = (event) => {
      if (event.data.size > 0) onChunk(event.data);
    };
    this.recorder.onerror = () => onError('The recording stopped because of a problem in this browser.');
  }

  start(): void {
    void this.audio.resume().catch(() => undefined);
    this.drawTimer = setInterval(() => this.draw(), Math.round(1000 / FPS));
    this.recorder.start(TIMESLICE_MS);
  }

  get recording(): boolean {
    return this.recorder.state === 'recording' && !this.stopping;
  }

  /** Connects whatever sound sources exist now (call again when a stream changes). */
  updateAudio(): void {
    const wanted = new Map<string, MediaStream>();
    for (const stream of [this.sources.localAudio(), this.sources.remoteAudio()]) {
      if (stream && stream.getAudioTracks().length > 0) wanted.set(stream.id, stream);
    }
    for (const [id, node] of this.inputs) {
      if (!wanted.has(id)) {
        node.disconnect();
        this.inputs.delete(id);
      }
    }
    for (const [id, stream] of wanted) {
      if (this.inputs.has(id)) continue;
      const node = this.audio.createMediaStreamSource(stream);
      node.connect(this.mix);
      this.inputs.set(id, node);
    }
  }

  /** Stops recording; resolves after the last chunk has been handed over. */
  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    this.stopping = new Promise<void>((resolve) => {
      const done = () => {
        clearInterval(this.drawTimer);
        this.canvasTrack.stop();
        for (const node of this.inputs.values()) node.disconnect();
        this.inputs.clear();
        void this.audio.close().catch(() => undefined);
        resolve();
      };
      if (this.recorder.state === 'inactive') return done();
      this.recorder.addEventListener('stop', done, { once: true });
      this.recorder.stop();
    });
    return this.stopping;
  }

  private draw() {
    const ctx = this.context2d;
    ctx.fillStyle = '#1d2a33';
    ctx.fillRect(0, 0, WIDTH, HEIGHT);
    if (this.sources.videoAllowed()) {
      const half = WIDTH / 2;
      const s = this.sources;
      this.drawSide(s.patientCameraOn(), s.patientVideo(), s.patientName(), 0, 0, half, HEIGHT);
      this.drawSide(s.clinicianCameraOn(), s.clinicianVideo(), s.clinicianName(), half, 0, half, HEIGHT);
      return;
    }
    ctx.fillStyle = '#ffffff';
    ctx.font = '600 28px system-ui, sans-serif';
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.fillText('Audio only', WIDTH / 2, HEIGHT / 2);
  }

  /**
   * One side of the frame: their video while their camera is on and sending; else their initial,
   * with "Camera off" when it is (not while a camera is still starting).
   */
  private drawSide(cameraOn: boolean, video: HTMLVideoElement | null, name: string, x: number, y: number, w: number, h: number) {
    if (cameraOn && video && hasLivePicture(video)) this.drawVideo(video, x, y, w, h);
    else this.drawInitial(name, !cameraOn, x, y, w, h);
  }

  private drawInitial(name: string, cameraOff: boolean, x: number, y: number, w: number, h: number) {
    const ctx = this.context2d;
    const cx = x + w / 2;
    const cy = y + h / 2 - 16;
    ctx.fillStyle = '#34495a';
    ctx.beginPath();
    ctx.arc(cx, cy, 40, 0, 2 * Math.PI);
    ctx.fill();
    ctx.fillStyle = '#ffffff';
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.font = '600 36px system-ui, sans-serif';
    ctx.fillText(initialOf(name), cx, cy + 2);
    if (!cameraOff) return;
    ctx.font = '500 18px system-ui, sans-serif';
    ctx.fillText('Camera off', cx, cy + 68);
  }

  /** One video, scaled to fit its half of the frame. */
  private drawVideo(video: HTMLVideoElement, x: number, y: number, w: number, h: number) {
    const scale = Math.min(w / video.videoWidth, h / video.videoHeight);
    const dw = video.videoWidth * scale;
    const dh = video.videoHeight * scale;
    this.context2d.drawImage(video, x + (w - dw) / 2, y + (h - dh) / 2, dw, dh);
  }
}

/**
 * The element has a picture from a camera that is still sending: a frame decoded, and its track
 * live and not muted (a remote track is muted while nothing arrives; the element would keep its
 * last frame).
 */
function hasLivePicture(video: HTMLVideoElement): boolean {
  if (video.readyState < 2 || video.videoWidth === 0) return false;
  const stream = video.srcObject instanceof MediaStream ? video.srcObject : null;
  const track = stream?.getVideoTracks()[0];
  return !!track && track.readyState === 'live' && !track.muted && track.enabled;
}

/** As the call page shows a person whose camera is off: the first letter of their name, without "Dr". */
function initialOf(name: string): string {
  return name.replace(/^Dr\.? /, '').slice(0, 1).toUpperCase() || '?';
}
