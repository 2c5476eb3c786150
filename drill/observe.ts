import { freshTotp, sleep } from '../test/browser/support';
import type { DemoPerson } from '../src/demo/demo-clinic';

/** A caller outside the browser that keeps its session cookie and CSRF token, as the web app does. */
export class Caller {
  constructor(
    public cookie: string | undefined = undefined,
    private csrf: string | undefined = undefined,
  ) {}

  async request(base: string, method: 'GET' | 'POST' | 'PUT', path: string, body?: object): Promise<{ status: number; body: any; bytes: number }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.cookie) headers.cookie = this.cookie;
    if (method !== 'GET') {
      headers['content-type'] = 'application/json';
      headers['x-csrf-token'] = this.csrf ?? 'none';
    }
    const res = await fetch(`${base}${path}`, { method, headers, ...(method !== 'GET' ? { body: JSON.stringify(body ?? {}) } : {}), signal: AbortSignal.timeout(15_000) });
    const setCookie = res.headers.getSetCookie().find((c) => c.startsWith('confidant_session='));
    if (setCookie) this.cookie = setCookie.split(';')[0];
    const raw = Buffer.from(await res.arrayBuffer());
    let parsed: any = null;
    if ((res.headers.get('content-type') ?? '').includes('json')) {
      parsed = JSON.parse(raw.toString('utf8'));
      if (typeof parsed?.csrfToken === 'string') this.csrf = parsed.csrfToken;
    }
    return { status: res.status, body: parsed, bytes: raw.length };
  }

  /** Password, then (staff) the authenticator code: what the sign-in page does. */
  static async signIn(base: string, person: DemoPerson): Promise<Caller> {
    const c = new Caller();
    const first = await c.request(base, 'POST', '/api/auth/sign-in', { email: person.email, password: person.password });
    if (first.status !== 200) throw new Error(`sign-in of ${person.email}: ${first.status} ${JSON.stringify(first.body)}`);
    if (first.body.stage === 'mfa') {
      const code = await freshTotp(person.totpSecret!);
      const second = await c.request(base, 'POST', '/api/auth/mfa/verify', { code });
      if (second.status !== 200) throw new Error(`second step of ${person.email}: ${second.status} ${JSON.stringify(second.body)}`);
    }
    const session = await c.request(base, 'GET', '/api/session');
    if (!session.body?.authenticated) throw new Error(`${person.email} is not signed in: ${JSON.stringify(session.body)}`);
    return c;
  }
}

/** When one process was first seen to have a feature off. */
export interface OffSeen {
  /** Epoch ms when the answer saying "off" arrived (the upper bound used in the report). */
  at: number;
  /**
   * Epoch ms when the previous request to that process was sent, whose answer still said "on":
   * the switch happened inside (since, at], so `at - since` is the measurement's resolution.
   */
  since: number;
}

/**
 * Asks each process, back to back with a few ms between, which features it has on
 * (GET /api/features/status answers from the process's own memory: exactly what its routes
 * check), and records the first answer in which each feature is off.
 */
export class FeatureWatch {
  readonly firstOff: Map<string, OffSeen>[];
  readonly polls: number[];
  private stopped = false;
  private readonly loops: Promise<void>[];

  constructor(
    private readonly bases: string[],
    private readonly gapMs = 5,
  ) {
    this.firstOff = bases.map(() => new Map());
    this.polls = bases.map(() => 0);
    this.loops = bases.map((_, i) => this.loop(i));
  }

  private async loop(i: number) {
    let previous = Date.now();
    while (!this.stopped) {
      const askedAt = Date.now();
      try {
        const res = await fetch(`${this.bases[i]}/api/features/status`, { signal: AbortSignal.timeout(2_000) });
        const at = Date.now();
        const body = (await res.json()) as { features: { name: string; enabled: boolean }[] };
        this.polls[i]!++;
        for (const f of body.features) if (!f.enabled && !this.firstOff[i]!.has(f.name)) this.firstOff[i]!.set(f.name, { at, since: previous });
        previous = askedAt;
      } catch {
        // A slow answer is retried; the gap it leaves shows in the measurement's bound.
      }
      await sleep(this.gapMs);
    }
  }

  /** When `feature` was off in every process, or null if some process has not said so. */
  offEverywhere(feature: string): { at: number; perProcess: OffSeen[] } | null {
    const seen = this.firstOff.map((m) => m.get(feature));
    if (seen.some((s) => !s)) return null;
    const perProcess = seen as OffSeen[];
    return { at: Math.max(...perProcess.map((s) => s.at)), perProcess };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }
}

/** The DPO's open page: the Server-Sent Events stream of new alerts on one process. */
export class AlertStream {
  readonly received = new Map<string, number>();
  private readonly abort = new AbortController();
  private readonly done: Promise<void>;
  readonly opened: Promise<void>;

  constructor(base: string, dpo: Caller) {
    let markOpen: () => void = () => undefined;
    let failOpen: (err: Error) => void = () => undefined;
    this.opened = new Promise<void>((resolve, reject) => {
      markOpen = resolve;
      failOpen = reject;
    });
    this.done = (async () => {
      try {
        const res = await fetch(`${base}/api/guard/alerts/stream`, { headers: { cookie: dpo.cookie ?? '', accept: 'text/event-stream' }, signal: this.abort.signal });
        if (res.status !== 200 || !res.body) throw new Error(`the DPO's alert stream answered ${res.status}`);
        const decoder = new TextDecoder();
        let buffer = '';
        const reader = res.body.getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          const at = Date.now();
          buffer += decoder.decode(value, { stream: true });
          if (buffer.includes(': open')) markOpen();
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const message = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            if (!/^event: alert$/m.test(message)) continue;
            const data = /^data: (.*)$/m.exec(message)?.[1];
            if (data) this.received.set((JSON.parse(data) as { id: string }).id, at);
          }
        }
      } catch (err) {
        if (!this.abort.signal.aborted) failOpen(err as Error);
      }
    })();
  }

  async close(): Promise<void> {
    this.abort.abort();
    await this.done;
  }
}
