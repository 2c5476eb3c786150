import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { BenchFailure } from './harness';

/**
 * A small closed-loop HTTP load generator: C workers, each with its own keep-alive socket,
 * each sending its next request as soon as the previous answer has been read in full.
 * Latency is measured per request, from just before the request is written to the end of
 * the response body.
 */

export interface RequestSpec {
  method?: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
}

export interface LoadOptions {
  host: string;
  port: number;
  connections: number;
  warmupS: number;
  durationS: number;
  /** Used round-robin, so every session (or row) is spread evenly over time. */
  requests: RequestSpec[];
  /** A request that takes longer than this counts as an error ("timeout"). */
  timeoutMs?: number;
}

export interface LatencySummary {
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface LoadResult {
  /** Requests that completed (2xx) inside the measured window. */
  requests: number;
  rps: number;
  measuredS: number;
  warmupRequests: number;
  /** Every successful answer, warm-up and the tail after the window included (for per-request ratios). */
  completedAll: number;
  latencyMs: LatencySummary;
  /** Every failure, warm-up included: non-2xx status, socket error, timeout. */
  errors: { total: number; byKind: Record<string, number>; examples: string[] };
  /** How busy the generator's own event loop was (1 = saturated: the numbers would be the generator's limit). */
  generatorEventLoopUtilization: number;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function summarise(samples: number[]): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  const arr = Array.from(sorted);
  const mean = arr.length ? arr.reduce((a, b) => a + b, 0) / arr.length : NaN;
  return { mean, p50: percentile(arr, 50), p90: percentile(arr, 90), p99: percentile(arr, 99), max: arr.length ? arr[arr.length - 1]! : NaN };
}

export interface SimpleResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request, body read in full. Used for setup (registration) and for the load itself. */
export function send(
  agent: http.Agent | undefined,
  host: string,
  port: number,
  spec: RequestSpec & { body?: string },
  timeoutMs = 10_000,
): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host,
        port,
        agent,
        method: spec.method ?? 'GET',
        path: spec.path,
        headers: {
          ...(spec.body !== undefined ? { 'content-length': Buffer.byteLength(spec.body) } : {}),
          ...spec.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    if (spec.body !== undefined) req.write(spec.body);
    req.end();
  });
}

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  if (opts.requests.length === 0) throw new Error('runLoad: no requests to send');
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.connections, maxFreeSockets: opts.connections });
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const start = performance.now();
  const measureFrom = start + opts.warmupS * 1000;
  const measureTo = measureFrom + opts.durationS * 1000;
  const samples: number[] = [];
  let warmupRequests = 0;
  let completedAll = 0;
  let next = 0;
  const errors = { total: 0, byKind: {} as Record<string, number>, examples: [] as string[] };
  const fail = (kind: string, example: string) => {
    errors.total++;
    errors.byKind[kind] = (errors.byKind[kind] ?? 0) + 1;
    if (errors.examples.length < 5) errors.examples.push(example);
  };
  let eluStart: ReturnType<typeof performance.eventLoopUtilization> | undefined;
  const eluTimer = setTimeout(() => (eluStart = performance.eventLoopUtilization()), opts.warmupS * 1000);

  const worker = async () => {
    while (performance.now() < measureTo) {
      const spec = opts.requests[next++ % opts.requests.length]!;
      const t0 = performance.now();
      try {
        const res = await send(agent, opts.host, opts.port, spec, timeoutMs);
        const t1 = performance.now();
        if (res.status < 200 || res.status > 299) {
          fail(`HTTP ${res.status}`, `${spec.method ?? 'GET'} ${spec.path} -> ${res.status} ${res.body.slice(0, 200)}`);
        } else {
          completedAll++;
          if (t1 >= measureFrom && t1 <= measureTo) samples.push(t1 - t0);
          else if (t1 < measureFrom) warmupRequests++;
        }
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        fail(msg.startsWith('timeout') ? 'timeout' : 'socket error', `${spec.method ?? 'GET'} ${spec.path} -> ${msg}`);
        // Do not spin on a dead server.
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };

  await Promise.all(Array.from({ length: opts.connections }, worker));
  clearTimeout(eluTimer);
  const elu = eluStart ? performance.eventLoopUtilization(eluStart).utilization : NaN;
  agent.destroy();
  const measuredS = opts.durationS;
  return {
    requests: samples.length,
    rps: samples.length / measuredS,
    measuredS,
    warmupRequests,
    completedAll,
    latencyMs: summarise(samples),
    errors,
    generatorEventLoopUtilization: elu,
  };
}

/** One GET answered 200, its body parsed; anything else fails the bench. */
export async function getJson<T>(host: string, port: number, spec: RequestSpec, what: string): Promise<T> {
  const res = await send(undefined, host, port, spec);
  if (res.status !== 200) throw new BenchFailure(`${what}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
  return JSON.parse(res.body) as T;
}

export interface SignedIn {
  email: string;
  cookie: string;
  csrfToken: string;
}

/** `n` patients registered through the API (POST /api/auth/register), each signed in by it. */
export async function registerPatients(host: string, port: number, n: number): Promise<SignedIn[]> {
  const runId = randomBytes(4).toString('hex');
  const out: SignedIn[] = new Array(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const email = `bench.${runId}.${i}@example.com`;
      const body = JSON.stringify({ givenName: 'Bench', familyName: `Patient ${i}`, dateOfBirth: '1980-01-01', email, password: randomBytes(12).toString('base64url') });
      const res = await send(
        undefined,
        host,
        port,
        { method: 'POST', path: '/api/auth/register', headers: { 'content-type': 'application/json', 'x-csrf-token': 'none', 'user-agent': 'confidant-bench' }, body },
        30_000,
      );
      if (res.status !== 201) throw new BenchFailure(`registering patient ${i}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
      const session = ([] as string[])
        .concat(res.headers['set-cookie'] ?? [])
        .map((c) => /^confidant_session=([^;]+)/.exec(c)?.[1])
        .find(Boolean);
      const csrfToken = (JSON.parse(res.body) as { csrfToken?: string }).csrfToken;
      if (!session || !csrfToken) throw new BenchFailure(`registering patient ${i}: no session cookie or CSRF token in the answer`);
      out[i] = { email, cookie: `confidant_session=${session}`, csrfToken };
    }
  };
  // argon2id (19 MiB, t=2) per registration: a few at a time keeps the 2 cores busy without thrashing.
  await Promise.all(Array.from({ length: Math.min(4, n) }, worker));
  return out;
}

/** A session cookie of the same length as `cookie`, for a baseline (which ignores it): the same request bytes as the service gets. */
export function sameLengthCookie(cookie: string): string {
  return `confidant_session=${'x'.repeat(cookie.length - 'confidant_session='.length)}`;
}
