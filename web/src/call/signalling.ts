import { consultationSignalUrl } from '../api';
import { SignalClose, type ClientSignal, type ServerSignal } from '../api-types';

export type SignallingState =
  | { status: 'connecting' }
  | { status: 'open' }
  | { status: 'reconnecting'; attempt: number; inMs: number }
  | { status: 'closed'; code: number; reason: string };

const PING_MS = 20_000;
const BACKOFF_MS = [500, 1_000, 2_000, 4_000, 8_000, 10_000];

/** Why a connection will not be tried again, in words for the person in the call. */
const FINAL: Record<number, string> = {
  [SignalClose.unauthenticated]: 'Your session has ended. Sign in again to rejoin the consultation.',
  [SignalClose.notFound]: 'This consultation could not be found.',
  [SignalClose.ended]: 'The consultation has ended.',
  [SignalClose.replaced]: 'The consultation was opened in another tab or window, so it was closed here.',
};

export interface SignallingOptions {
  consultationId: string;
  onMessage(message: ServerSignal): void;
  onState(state: SignallingState): void;
  /**
   * Asked before each reconnect when the last attempt never opened (the server refuses an upgrade
   * with a plain HTTP answer the browser does not show us): a reason to stop, or null to go on.
   */
  beforeReconnect?(): Promise<string | null>;
}

/**
 * The consultation's signalling WebSocket: reconnects with backoff after a drop, except when the
 * server said why it closed for good (signed out, not a party, the call ended, another tab).
 */
export class Signalling {
  private ws: WebSocket | null = null;
  private attempt = 0;
  private stopped = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private ping: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly opts: SignallingOptions) {}

  connect(): void {
    if (this.stopped) return;
    this.opts.onState({ status: 'connecting' });
    const ws = new WebSocket(consultationSignalUrl(this.opts.consultationId));
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.attempt = 0;
      this.opts.onState({ status: 'open' });
      clearInterval(this.ping);
      this.ping = setInterval(() => this.send({ type: 'ping' }), PING_MS);
    };
    ws.onmessage = (event) => {
      if (typeof event.data !== 'string') return;
      let message: ServerSignal;
      try {
        message = JSON.parse(event.data) as ServerSignal;
      } catch {
        return;
      }
      this.opts.onMessage(message);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.ping);
      if (this.stopped) return;
      const final = FINAL[event.code];
      if (final) {
        this.stopped = true;
        this.opts.onState({ status: 'closed', code: event.code, reason: final });
        return;
      }
      void this.scheduleReconnect(!opened);
    };
  }

  private async scheduleReconnect(neverOpened: boolean) {
    if (neverOpened && this.opts.beforeReconnect) {
      const reason = await this.opts.beforeReconnect().catch(() => null);
      if (this.stopped) return;
      if (reason) {
        this.stopped = true;
        this.opts.onState({ status: 'closed', code: 0, reason });
        return;
      }
    }
    const inMs = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)]!;
    this.attempt++;
    this.opts.onState({ status: 'reconnecting', attempt: this.attempt, inMs });
    this.timer = setTimeout(() => this.connect(), inMs);
  }

  /** Sends if connected; a message lost while disconnected is recovered by the re-offer after reconnecting. */
  send(message: ClientSignal): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(message));
    return true;
  }

  close(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.ping);
    const ws = this.ws;
    this.ws = null;
    if (ws && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)) ws.close(1000, 'left');
  }
}
