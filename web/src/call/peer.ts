import type { Party, ServerSignal } from '../api-types';

type SignalData = Extract<ServerSignal, { type: 'signal' }>['data'];

declare global {
  interface Window {
    /** The call's current RTCPeerConnection: a debugging handle (getStats), nothing secret. */
    __confidantPeer?: RTCPeerConnection | null;
  }
}

export interface PeerOptions {
  role: Party;
  iceServers: RTCIceServer[];
  /** Sends a signalling message to the other side; false if it could not be sent now. */
  send(data: SignalData): boolean;
  /** A remote track arrived (on a fresh connection, once per kind). */
  onRemoteTrack(kind: 'audio' | 'video', stream: MediaStream): void;
  onConnectionState(state: RTCPeerConnectionState): void;
  /** The connection failed for good: the clinician offers again, the patient asks for a new offer. */
  onFailed(): void;
}

/**
 * One side of the WebRTC call. The clinician always offers; every offer is made on a fresh
 * RTCPeerConnection (and the patient answers each on a fresh one), so a reload or a dropped
 * connection on either side recovers by offering again. Two transceivers, audio then video,
 * both sendrecv; the video sender carries the camera only while the call is in video.
 */
export class CallPeer {
  private pc: RTCPeerConnection | null = null;
  private audio: RTCRtpTransceiver | null = null;
  private video: RTCRtpTransceiver | null = null;
  private queued: RTCIceCandidateInit[] = [];
  private mic: MediaStreamTrack | null = null;
  private camera: MediaStreamTrack | null = null;
  private disconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  constructor(private readonly opts: PeerOptions) {}

  get connection(): RTCPeerConnection | null {
    return this.pc;
  }

  get state(): RTCPeerConnectionState | 'none' {
    return this.pc?.connectionState ?? 'none';
  }

  setMic(track: MediaStreamTrack | null): void {
    this.mic = track;
    void this.audio?.sender.replaceTrack(track).catch(() => undefined);
  }

  /** The camera's track while the call is in video, else null (the sender then sends nothing). */
  setCamera(track: MediaStreamTrack | null): void {
    this.camera = track;
    const sender = this.video?.sender;
    if (sender) void sendVideo(sender, track);
  }

  /** Clinician: a new offer on a fresh connection. */
  async offer(): Promise<void> {
    if (this.closed || this.opts.role !== 'clinician') return;
    const pc = this.fresh();
    this.audio = pc.addTransceiver(this.mic ?? 'audio', { direction: 'sendrecv' });
    this.video = pc.addTransceiver('video', { direction: 'sendrecv' });
    await sendVideo(this.video.sender, this.camera);
    const offer = await pc.createOffer();
    if (this.pc !== pc) return;
    await pc.setLocalDescription(offer);
    if (this.pc !== pc || !pc.localDescription) return;
    this.opts.send({ kind: 'offer', sdp: pc.localDescription.sdp });
  }

  private chain: Promise<void> = Promise.resolve();

  /** Handles one signalling message; messages are handled one after another, in order. */
  handle(data: SignalData): Promise<void> {
    this.chain = this.chain.then(() => this.handleNow(data));
    return this.chain;
  }

  private async handleNow(data: SignalData): Promise<void> {
    if (this.closed) return;
    try {
      if (data.kind === 'offer' && this.opts.role === 'patient') await this.answer(data.sdp);
      else if (data.kind === 'answer' && this.opts.role === 'clinician') await this.accept(data.sdp);
      else if (data.kind === 'ice') await this.addCandidate(data.candidate);
    } catch {
      // A message for a connection that has since been replaced; the current one carries on.
    }
  }

  private async answer(sdp: string) {
    const pc = this.fresh();
    await pc.setRemoteDescription({ type: 'offer', sdp });
    if (this.pc !== pc) return;
    const transceivers = pc.getTransceivers();
    this.audio = transceivers.find((t) => t.receiver.track.kind === 'audio') ?? null;
    this.video = transceivers.find((t) => t.receiver.track.kind === 'video') ?? null;
    for (const t of [this.audio, this.video]) if (t) t.direction = 'sendrecv';
    await this.audio?.sender.replaceTrack(this.mic);
    // Never the camera unless the call is in video (setCamera is only given one then).
    if (this.video) await sendVideo(this.video.sender, this.camera);
    const answer = await pc.createAnswer();
    if (this.pc !== pc) return;
    await pc.setLocalDescription(answer);
    if (this.pc !== pc || !pc.localDescription) return;
    this.opts.send({ kind: 'answer', sdp: pc.localDescription.sdp });
    await this.flushCandidates(pc);
  }

  private async accept(sdp: string) {
    const pc = this.pc;
    if (!pc || pc.signalingState !== 'have-local-offer') return;
    await pc.setRemoteDescription({ type: 'answer', sdp });
    await this.flushCandidates(pc);
  }

  private async addCandidate(candidate: RTCIceCandidateInit | null) {
    const pc = this.pc;
    if (!candidate) return;
    if (!pc || !pc.remoteDescription) {
      this.queued.push(candidate);
      return;
    }
    await pc.addIceCandidate(candidate).catch(() => undefined);
  }

  private async flushCandidates(pc: RTCPeerConnection) {
    const queued = this.queued.splice(0);
    for (const c of queued) {
      if (this.pc !== pc) return;
      await pc.addIceCandidate(c).catch(() => undefined);
    }
  }

  /** Closes the current connection and opens a new one, wired to the signalling channel. */
  private fresh(): RTCPeerConnection {
    this.drop();
    const pc = new RTCPeerConnection({ iceServers: this.opts.iceServers });
    this.pc = pc;
    window.__confidantPeer = pc;
    pc.onicecandidate = (event) => {
      if (this.pc !== pc) return;
      const c = event.candidate;
      if (!c) return;
      this.opts.send({
        kind: 'ice',
        candidate: { candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex, usernameFragment: c.usernameFragment },
      });
    };
    pc.ontrack = (event) => {
      if (this.pc !== pc) return;
      const kind = event.track.kind === 'video' ? 'video' : 'audio';
      this.opts.onRemoteTrack(kind, new MediaStream([event.track]));
    };
    pc.onconnectionstatechange = () => {
      if (this.pc !== pc) return;
      const state = pc.connectionState;
      this.opts.onConnectionState(state);
      clearTimeout(this.disconnectTimer);
      if (state === 'failed') this.opts.onFailed();
      // "disconnected" often recovers by itself; if it lasts, treat it as failed.
      if (state === 'disconnected') {
        this.disconnectTimer = setTimeout(() => {
          if (this.pc === pc && pc.connectionState === 'disconnected') this.opts.onFailed();
        }, 6_000);
      }
    };
    this.opts.onConnectionState(pc.connectionState);
    return pc;
  }

  private drop() {
    clearTimeout(this.disconnectTimer);
    const pc = this.pc;
    this.pc = null;
    this.audio = null;
    this.video = null;
    this.queued = [];
    if (pc) {
      pc.onicecandidate = null;
      pc.ontrack = null;
      pc.onconnectionstatechange = null;
      pc.close();
    }
    if (window.__confidantPeer === pc) window.__confidantPeer = null;
  }

  /** The other side has gone: forget the connection (a new offer will follow when they are back). */
  reset(): void {
    this.drop();
    this.opts.onConnectionState('closed');
  }

  close(): void {
    this.closed = true;
    this.drop();
  }
}

/**
 * Gives the video sender the camera's track, or none. With none, its encodings are also switched
 * off: replacing the track with null is not enough for Firefox, which keeps sending the last
 * camera frame once a second (a frozen picture of the patient leaving their machine).
 */
async function sendVideo(sender: RTCRtpSender, track: MediaStreamTrack | null): Promise<void> {
  // Each step on its own: a failure of one (a closed connection, parameters not settable yet)
  // must never keep the other from running, least of all the removal of the camera.
  const quietly = (p: Promise<void>) => p.catch(() => undefined);
  if (track === null) {
    await quietly(setEncodingsActive(sender, false));
    await quietly(sender.replaceTrack(null));
  } else {
    await quietly(sender.replaceTrack(track));
    await quietly(setEncodingsActive(sender, true));
  }
}

async function setEncodingsActive(sender: RTCRtpSender, active: boolean): Promise<void> {
  const params = sender.getParameters();
  // Before negotiation there are no encodings yet; the track alone decides then.
  if (!params.encodings || params.encodings.length === 0) return;
  if (params.encodings.every((e) => e.active === active)) return;
  for (const e of params.encodings) e.active = active;
  await sender.setParameters(params);
}
