import { consultationSignalUrl } from '../api';
import { SignalClose, type ClientSignal, type ServerSignal } from '../api-types';

export type SignallingState =
  | { status: 'connecting' }
  | { status: 'open' }
  | { status: 'reconnecting'; attempt: number; inMs: number }
  | { status: 'closed'; code: number; reason: string };

/** Until the server's welcome says otherwise (SIGNAL_PING_SECONDS on the server). */
const DEFAULT_PING_MS = 20_000;
/** A server's ping interval outside these bounds is not believed. */
const PING_MS_RANGE = [1_000, 300_000] as const;
/**
 * Silence this many ping intervals long (no pong, no message), with a ping of ours unanswered,
 * and the socket is taken for dead: a half-open connection never closes by itself. Checked once
 * an interval, so a dead socket is dropped about two intervals after it last spoke; the server
 * gives up on us after 2.5.
 */
const SILENT_INTERVALS = 1.5;
const BACKOFF_MS = [500, 1_000, 2_000, 4_000, 8_000, 10_000];

/** What the person in the call is told while calls are switched off (a kill switch). */
export const CALLS_SWITCHED_OFF = 'Calls are switched off for the moment. Please try again later.';

/** Why a connection will not be tried again, in words for the person in the call. */
const FINAL: Record<number, string> = {
  [SignalClose.unauthenticated]: 'Your session has ended. Sign in again to rejoin the consultation.',
  [SignalClose.notFound]: 'This consultation could not be found.',
  [SignalClose.ended]: 'The consultation has ended.',
  [SignalClose.replaced]: 'The consultation was opened in another tab or window, so it was closed here.',
  // Reconnecting would only be refused until someone switches calls back on.
  [SignalClose.featureDisabled]: CALLS_SWITCHED_OFF,
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
 * server said why it closed for good (signed out, not a party, the call ended, another tab, calls
 * switched off). It pings at the interval the server sets, and drops and reopens a socket that has
 * gone silent.
 */
export class Signalling {
  private ws: WebSocket | null = null;
  private attempt = 0;
  private stopped = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private ping: ReturnType<typeof setInterval> | undefined;
  private pingMs = DEFAULT_PING_MS;
  /** When the current socket last delivered anything (or was made), and when we last pinged on it. */
  private heardAt = 0;
  private pingedAt = 0;

  constructor(private readonly opts: SignallingOptions) {}

  connect(): void {
    if (this.stopped) return;
    this.opts.onState({ status: 'connecting' });
    const ws = new WebSocket(consultationSignalUrl(this.opts.consultationId));
    this.ws = ws;
    let opened = false;
    // A connection that hangs while opening is given up on by the same clock.
    this.heardAt = this.pingedAt = Date.now();
    this.startPinging(() => !opened);
    ws.onopen = () => {
      opened = true;
      this.attempt = 0;
      this.heardAt = Date.now();
      this.opts.onState({ status: 'open' });
    };
    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      this.heardAt = Date.now();
      if (typeof event.data !== 'string') return;
      let message: ServerSignal;
      try {
        message = JSON.parse(event.data) as ServerSignal;
      } catch {
        return;
      }
      if (message.type === 'welcome') this.followServerPing(message, () => !opened);
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

  /** Every interval: give up on a socket that has gone silent, or ping it. */
  private startPinging(neverOpened: () => boolean) {
    clearInterval(this.ping);
    this.ping = setInterval(() => {
      const ws = this.ws;
      if (!ws) return;
      const now = Date.now();
      // Silent since our last ping (timers may run late in a background tab: what counts is that
      // a ping went unanswered) and for long enough.
      if (this.heardAt <= this.pingedAt && now - this.heardAt >= SILENT_INTERVALS * this.pingMs) return this.drop(ws, neverOpened());
      if (ws.readyState !== WebSocket.OPEN) return;
      this.pingedAt = now;
      this.send({ type: 'ping' });
    }, this.pingMs);
  }

  /** The server says how often to ping (its SIGNAL_PING_SECONDS), within bounds. */
  private followServerPing(welcome: Extract<ServerSignal, { type: 'welcome' }>, neverOpened: () => boolean) {
    const pingMs = welcome.pingMs;
    if (typeof pingMs !== 'number' || !Number.isFinite(pingMs)) return;
    const bounded = Math.min(Math.max(pingMs, PING_MS_RANGE[0]), PING_MS_RANGE[1]);
    if (bounded === this.pingMs) return;
    this.pingMs = bounded;
    this.startPinging(neverOpened);
  }

  /** Gives up on a socket that has gone silent: it may never report closing, so we do not wait for it. */
  private drop(ws: WebSocket, neverOpened: boolean) {
    this.ws = null;
    clearInterval(this.ping);
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.close(1000, 'no answer');
    if (this.stopped) return;
    void this.scheduleReconnect(neverOpened);
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
