/**
 * Polls /api/health/ready and /api/health/live every intervalMs for the whole test, and keeps
 * every answer: readiness transitions and recovery times are read from these afterwards.
 */

export interface Probe {
  path: 'ready' | 'live';
  startedAt: number;
  endedAt: number;
  /** 0: no HTTP answer (refused, reset, or slower than the probe's own timeout). */
  status: number;
  code?: string;
  /** Readiness details, e.g. { database: 'unavailable' }. */
  details?: Record<string, unknown>;
  error?: string;
}

export class HealthWatch {
  readonly probes: Probe[] = [];
  private timer: NodeJS.Timeout | undefined;
  private inFlight = new Set<Promise<void>>();

  constructor(
    private readonly baseUrl: () => string,
    private readonly intervalMs = 100,
    /** A probe slower than this counts as not answered (and as not green). */
    private readonly probeTimeoutMs = 2_000,
  ) {}

  start(): void {
    const tick = () => {
      for (const path of ['ready', 'live'] as const) {
        const p = this.probe(path);
        this.inFlight.add(p);
        void p.finally(() => this.inFlight.delete(p));
      }
    };
    tick();
    this.timer = setInterval(tick, this.intervalMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all(this.inFlight);
  }

  private async probe(path: 'ready' | 'live'): Promise<void> {
    const startedAt = Date.now();
    const rec: Probe = { path, startedAt, endedAt: 0, status: 0 };
    try {
      const res = await fetch(`${this.baseUrl()}/api/health/${path}`, { signal: AbortSignal.timeout(this.probeTimeoutMs) });
      rec.status = res.status;
      const body = (await res.json().catch(() => undefined)) as { error?: { code?: string; details?: Record<string, unknown> } } | undefined;
      if (body?.error?.code) rec.code = body.error.code;
      if (body?.error?.details) rec.details = body.error.details;
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      rec.error = e.name === 'TimeoutError' ? 'probe_timeout' : (e.cause?.code ?? e.name);
    }
    rec.endedAt = Date.now();
    this.probes.push(rec);
  }

  /** Readiness answers in [from, to), in the order they came back. */
  ready(from: number, to = Infinity): Probe[] {
    return this.probes.filter((p) => p.path === 'ready' && p.endedAt >= from && p.endedAt < to).sort((a, b) => a.endedAt - b.endedAt);
  }

  live(from: number, to = Infinity): Probe[] {
    return this.probes.filter((p) => p.path === 'live' && p.endedAt >= from && p.endedAt < to);
  }

  /** Waits for a 200 from readiness that came back at or after `since`; its time, or undefined. */
  async waitGreen(since: number, timeoutMs: number): Promise<number | undefined> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const green = this.ready(since).find((p) => p.status === 200);
      if (green) return green.endedAt;
      if (Date.now() > until || this.ready(since).at(-1)?.status === 404) return undefined;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Waits until transitions() sees readiness green again after a fault; its time, or undefined. */
  async waitRecovered(faultAt: number, acceptingAt: number, timeoutMs: number, giveUp: () => boolean = () => false): Promise<number | undefined> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const { greenAt } = this.transitions(faultAt, acceptingAt, Infinity);
      if (greenAt !== undefined) return greenAt;
      // No readiness endpoint at all (404), or no process to answer: waiting tells nothing more.
      if (Date.now() > until || giveUp() || this.latestReady()?.status === 404) return undefined;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The latest readiness answer (to tell "no such endpoint" from "not ready"). */
  latestReady(): Probe | undefined {
    return this.ready(0).at(-1);
  }

  /**
   * What readiness did around one fault:
   *   redAt    the first non-200 answer at or after the fault began;
   *   greenAt  the first 200 at or after the database accepted connections again (and after redAt);
   *   flaps    non-200 answers after greenAt, within the window.
   */
  transitions(faultAt: number, acceptingAt: number, to: number) {
    const probes = this.ready(faultAt, to);
    const red = probes.find((p) => p.status !== 200);
    const greenFrom = Math.max(acceptingAt, red?.endedAt ?? -Infinity);
    const green = probes.find((p) => p.status === 200 && p.endedAt >= greenFrom);
    const flaps = green ? probes.filter((p) => p.endedAt > green.endedAt && p.status !== 200).length : 0;
    const redDetails = new Set(probes.filter((p) => p.status !== 200).map((p) => (p.status === 0 ? `no answer: ${p.error}` : `${p.status} ${p.code ?? ''} ${JSON.stringify(p.details ?? {})}`)));
    return {
      redAt: red?.endedAt,
      greenAt: green?.endedAt,
      flaps,
      redAnswers: [...redDetails],
      maxProbeLatencyMs: Math.max(0, ...probes.map((p) => p.endedAt - p.startedAt)),
    };
  }
}
