/**
 * bench:replay load generators (run in the bench's own process; the servers are children).
 *
 *   runRangeThroughput  C raw TCP connections (net + `onread` into one reused 1 MiB buffer per
 *                       connection: no http parser on the body, no allocation per read), each
 *                       sending keep-alive GETs with a Range of `rangeBytes` at a seeded random
 *                       offset, one after the other; body bytes are counted and thrown away.
 *   runReplayStreams    N long-lived range requests (`bytes=X-`, as a browser's media element
 *                       sends them), each on its own raw TCP connection reading into one buffer
 *                       all streams share (the head parsed, the body counted), consumed at a
 *                       fixed bit rate (the socket paused and resumed against a budget), while
 *                       seeks (the current connection closed, a new request from a random
 *                       offset) are timed to their first body byte.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { summarise, type LatencySummary } from './loadgen';

/** Deterministic PRNG, so every target is asked for the same ranges. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------
// /proc helpers

/** VmRSS and VmHWM (peak) of a process, MiB. */
export function procRss(pid: number): { rssMiB: number; peakMiB: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
    return { rssMiB: kb('VmRSS') / 1024, peakMiB: kb('VmHWM') / 1024 };
  } catch {
    return { rssMiB: NaN, peakMiB: NaN };
  }
}

/** Kernel memory held by TCP sockets, MiB (the whole machine; from /proc/net/sockstat). */
export function tcpMemMiB(): number {
  try {
    const pages = Number(/^TCP:.* mem (\d+)/m.exec(readFileSync('/proc/net/sockstat', 'utf8'))?.[1] ?? NaN);
    return (pages * 4096) / (1 << 20);
  } catch {
    return NaN;
  }
}

/**
 * Connections waiting in the listen queue of the socket listening on 127.0.0.1:`port` (accepted by
 * the kernel, not yet by the server), from /proc/net/tcp; NaN if there is no such socket.
 */
export function listenQueueLength(port: number): number {
  try {
    const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
    // The kernel lists listening sockets first: the first 64 KiB hold them, and reading no further
    // spares it (and this process, which also times the streams) writing out 4,000 connections.
    const fd = openSync('/proc/net/tcp', 'r');
    const head = Buffer.allocUnsafe(64 * 1024);
    let n = 0;
    try {
      n = readSync(fd, head, 0, head.length, null);
    } finally {
      closeSync(fd);
    }
    for (const line of head.toString('latin1', 0, n).split('\n')) {
      const f = line.trim().split(/\s+/);
      // sl local_address rem_address st tx_queue:rx_queue …; st 0A is LISTEN, and rx_queue its accept queue.
      if (f[1] === local && f[3] === '0A') return parseInt(f[4]!.split(':')[1]!, 16);
    }
  } catch {
    // fall through
  }
  return NaN;
}

/** TCP counters of the whole machine (/proc/net/netstat) that show the kernel, not the server, dropping or delaying. */
const TCP_COUNTERS = [
  'ListenOverflows',
  'TCPSynRetrans',
  'TCPTimeouts',
  'TCPMemoryPressures',
  'TCPMemoryPressuresChrono',
  'PruneCalled',
  'TCPRcvQDrop',
  'TCPAbortOnMemory',
] as const;
export type TcpCounters = Record<(typeof TCP_COUNTERS)[number], number>;

export function tcpCounters(): TcpCounters | null {
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'));
    const names = lines[0]!.split(/\s+/);
    const values = lines[1]!.split(/\s+/).map(Number);
    const out = {} as TcpCounters;
    for (const k of TCP_COUNTERS) out[k] = values[names.indexOf(k)] ?? NaN;
    return out;
  } catch {
    return null;
  }
}

export function tcpCountersDelta(a: TcpCounters | null, b: TcpCounters | null): TcpCounters | null {
  if (!a || !b) return null;
  const out = {} as TcpCounters;
  for (const k of TCP_COUNTERS) out[k] = b[k] - a[k];
  return out;
}

// ---------------------------------------------------------------------------------------------
// Throughput

export interface ThroughputOptions {
  host: string;
  port: number;
  path: string;
  connections: number;
  warmupS: number;
  durationS: number;
  fileSize: number;
  rangeBytes: number;
  seed: number;
  /** Extra request header lines (e.g. `cookie: …`), one set per connection, used round-robin. */
  headerLines: string[];
  /** No byte for this long while a request is open: a failure. */
  timeoutMs: number;
  /** Called when the measured window opens and closes (CPU snapshots of the server). */
  onWindowStart?: () => void;
  onWindowEnd?: () => void;
}

export interface ThroughputResult {
  bytes: number;
  measuredS: number;
  bytesPerS: number;
  /** Responses whose last byte arrived inside the window. */
  requests: number;
  /** Request written → response headers read, for every response (warm-up included). */
  headersMs: LatencySummary;
  errors: { total: number; examples: string[] };
  generatorCpuCores: number;
  generatorEventLoopUtilization: number;
}

export async function runRangeThroughput(o: ThroughputOptions): Promise<ThroughputResult> {
  const start = performance.now();
  const measureFrom = start + o.warmupS * 1000;
  const measureTo = measureFrom + o.durationS * 1000;
  const hardStop = measureTo + Math.max(15_000, o.timeoutMs);
  let bytes = 0;
  let requests = 0;
  const headerTimes: number[] = [];
  const errors = { total: 0, examples: [] as string[] };
  const fail = (msg: string) => {
    errors.total++;
    if (errors.examples.length < 5) errors.examples.push(msg);
  };
  let elu0: ReturnType<typeof performance.eventLoopUtilization> | undefined;
  let cpu0: NodeJS.CpuUsage | undefined;
  let gen = { cores: NaN, elu: NaN };
  const t1 = setTimeout(() => {
    elu0 = performance.eventLoopUtilization();
    cpu0 = process.cpuUsage();
    o.onWindowStart?.();
  }, o.warmupS * 1000);
  const t2 = setTimeout(() => {
    o.onWindowEnd?.();
    if (elu0 && cpu0) {
      const c = process.cpuUsage(cpu0);
      gen = { cores: (c.user + c.system) / 1000 / (o.durationS * 1000), elu: performance.eventLoopUtilization(elu0).utilization };
    }
  }, (o.warmupS + o.durationS) * 1000);

  const connection = (i: number) =>
    new Promise<void>((resolve) => {
      const rand = mulberry32(o.seed + i * 7919);
      const extra = o.headerLines.length ? `${o.headerLines[i % o.headerLines.length]}\r\n` : '';
      const buf = Buffer.allocUnsafe(1 << 20);
      let sock: net.Socket | null = null;
      let state: 'connecting' | 'idle' | 'head' | 'body' | 'done' = 'connecting';
      let head: Buffer | null = null;
      let remaining = 0;
      let expected = 0;
      let sentAt = 0;
      let finished = false;

      const finish = () => {
        if (finished) return;
        finished = true;
        state = 'done';
        sock?.destroy();
        resolve();
      };
      const sendNext = () => {
        if (performance.now() >= measureTo) return finish();
        const span = Math.min(o.rangeBytes, o.fileSize);
        const first = Math.floor(rand() * (o.fileSize - span + 1));
        const last = first + span - 1;
        expected = span;
        state = 'head';
        head = null;
        sentAt = performance.now();
        sock!.write(`GET ${o.path} HTTP/1.1\r\nhost: ${o.host}:${o.port}\r\nuser-agent: confidant-bench-replay\r\nrange: bytes=${first}-${last}\r\n${extra}\r\n`);
      };
      const body = (n: number, now: number) => {
        if (n > remaining) {
          fail(`${n - remaining} bytes past the end of a response`);
          return reconnectLater();
        }
        remaining -= n;
        if (now >= measureFrom && now <= measureTo) bytes += n;
        if (remaining === 0) {
          if (now >= measureFrom && now <= measureTo) requests++;
          state = 'idle';
          sendNext();
        }
      };
      const onRead = (n: number, b: Uint8Array): void => {
        const now = performance.now();
        if (state === 'body') {
          body(n, now);
          return;
        }
        if (state !== 'head') {
          fail(`unexpected bytes in state ${state}`);
          reconnectLater();
          return;
        }
        // Copy: `b` is reused by the next read.
        const piece = Buffer.from(b.subarray(0, n)); // a copy
        head = head ? Buffer.concat([head, piece]) : piece;
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) {
          if (head.length > 65_536) {
            fail('response header over 64 KiB');
            reconnectLater();
          }
          return;
        }
        const text = head.toString('latin1', 0, end);
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0);
        const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(text)?.[1] ?? NaN);
        if (status !== 206 || length !== expected) {
          fail(`HTTP ${status}, content-length ${length} (wanted 206, ${expected}): ${head.toString('latin1', end + 4, end + 204)}`);
          return reconnectLater();
        }
        headerTimes.push(now - sentAt);
        remaining = length;
        state = 'body';
        const rest = head.length - (end + 4);
        head = null;
        if (rest > 0) body(rest, now);
        return;
      };
      let reconnecting = false;
      const reconnectLater = () => {
        if (reconnecting || finished) return;
        reconnecting = true;
        state = 'connecting';
        sock?.destroy();
        setTimeout(() => {
          reconnecting = false;
          if (performance.now() >= measureTo) finish();
          else connect();
        }, 10);
      };
      const connect = () => {
        if (finished) return;
        state = 'connecting';
        const s = net.connect({ host: o.host, port: o.port, onread: { buffer: buf, callback: (n, b) => (onRead(n, b), true) } });
        sock = s;
        s.setNoDelay(true);
        s.setTimeout(o.timeoutMs, () => {
          if (sock !== s || finished) return;
          fail(`no byte for ${o.timeoutMs} ms`);
          reconnectLater();
        });
        s.once('connect', () => {
          if (sock !== s || finished) return;
          state = 'idle';
          sendNext();
        });
        s.on('error', (err) => {
          if (sock !== s || finished || reconnecting) return;
          fail(`socket: ${err.message}`);
          reconnectLater();
        });
        s.once('close', () => {
          if (sock !== s || finished || reconnecting) return;
          // The server may close an idle keep-alive connection; anything else is a failure.
          if (state === 'idle' || state === 'connecting') return reconnectLater();
          fail(`connection closed in ${state}`);
          reconnectLater();
        });
      };
      const guard = setTimeout(() => {
        if (!finished) fail('still receiving long after the window closed');
        finish();
      }, hardStop - performance.now());
      guard.unref();
      connect();
    });

  await Promise.all(Array.from({ length: o.connections }, (_, i) => connection(i)));
  clearTimeout(t1);
  clearTimeout(t2);
  return {
    bytes,
    measuredS: o.durationS,
    bytesPerS: bytes / o.durationS,
    requests,
    headersMs: summarise(headerTimes),
    errors,
    generatorCpuCores: gen.cores,
    generatorEventLoopUtilization: gen.elu,
  };
}

/** Fetches [first, last] of `path` in full (node:http) and returns the bytes: for byte-for-byte checks. */
export function fetchRange(host: string, port: number, path: string, first: number, last: number, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path, agent: false, headers: { 'user-agent': 'confidant-bench-replay', range: `bytes=${first}-${last}`, ...headers } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.setTimeout(60_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/**
 * One request at a time: `n` ranges of 1 MiB from seeded random offsets, each read in full (so the
 * server sees no abandoned request); returns ms from the request to its first body byte.
 */
export async function firstByteTimes(host: string, port: number, path: string, headers: Record<string, string>, n: number, fileSize: number, seed: number): Promise<number[]> {
  const rand = mulberry32(seed);
  const out: number[] = [];
  const span = Math.min(1 << 20, fileSize);
  for (let i = 0; i < n; i++) {
    const first = Math.floor(rand() * (fileSize - span + 1));
    const t0 = performance.now();
    let t1 = 0;
    await new Promise<void>((resolve, reject) => {
      const req = http.get({ host, port, path, agent: false, headers: { 'user-agent': 'confidant-bench-replay', range: `bytes=${first}-${first + span - 1}`, ...headers } }, (res) => {
        if (res.statusCode !== 206) reject(new Error(`HTTP ${res.statusCode}`));
        res.on('data', () => {
          t1 ||= performance.now();
        });
        res.on('end', () => resolve());
        res.on('error', reject);
      });
      req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
      req.on('error', reject);
    });
    out.push(t1 - t0);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Concurrency: paced replay streams and seeks

export interface StreamPhase {
  name: string;
  seconds: number;
  /** Seeks per second during this phase (0 = none). */
  seeksPerS: number;
  /** Runs when the phase starts (awaited before its timers start). */
  onStart?: () => Promise<void> | void;
}

export interface StreamsOptions {
  host: string;
  port: number;
  path: string;
  cookies: string[];
  streams: number;
  /** Seconds over which the streams are opened (evenly). */
  rampS: number;
  phases: StreamPhase[];
  /** Bytes per second each stream consumes (1 Mbit/s = 125,000). */
  rateBytesPerS: number;
  /**
   * How far ahead of playback a stream reads (seconds of media): a player's buffer. It stops
   * reading once that far ahead, and reads again once only half of it is left.
   */
  leadS: number;
  fileSize: number;
  seed: number;
  /** A request with no first byte after this long is a failure. */
  timeoutMs: number;
  /** Every second (from the first phase on): sampling of the server. */
  everySecond?: () => void;
  log: (m: string) => void;
  /**
   * Runs once the last phase has ended, before the seeks still waiting are waited for and every
   * stream is torn down at once (2,000 requests cut short together: no part of holding them).
   */
  afterPhases?: () => Promise<void> | void;
  /** Connections waiting for the server to accept them (its listen queue), sampled every 100 ms per phase. */
  listenQueue?: () => number;
}

interface StreamState {
  idx: number;
  /** `cookie: …` and the blank line that ends the request. */
  cookieLine: Buffer;
  /** The connection of the request in flight (one per request: a seek closes it and opens another). */
  sock: net.Socket | null;
  /** Request generation: events of an aborted request (a seek) are ignored. */
  gen: number;
  issuedAt: number;
  firstByteAt: number;
  received: number;
  paused: boolean;
  /** The request in flight is a seek (timed), made in this phase. */
  seekPhase: string | null;
  error: string | null;
  /** Worst shortfall of received bytes against real-time playback, in ms of media (0 = never ran dry). */
  worstDryMs: number;
  seeks: number;
  bytes: number;
  ended: boolean;
}

export interface PhaseResult {
  name: string;
  seconds: number;
  seeks: number;
  seekFirstByteMs: LatencySummary;
  seekHeadersMs: LatencySummary;
  /** Body bytes received by all streams during the phase / its length. */
  bytesPerS: number;
  openStreams: number;
  /**
   * How late the generator's own event loop ran a 10 ms timer during the phase (ms): a seek's
   * connect, request and first byte each wait for this loop too, so its tail is the measurement's.
   */
  generatorLoopDelayMs: { p50: number; p99: number; max: number };
}

export interface StreamsResult {
  streams: number;
  opened: number;
  openFirstByteMs: LatencySummary;
  phases: PhaseResult[];
  /** Streams with no failure that never ran dry (every byte arrived before playback needed it). */
  healthy: number;
  ranDry: number;
  worstDryMs: LatencySummary;
  failed: number;
  failures: Record<string, number>;
  failureExamples: string[];
  generatorCpuCores: number;
  /** After the ramp, until every stream had its first byte (or timed out): seconds. */
  settleS: number;
  /** Most connections waiting in the server's listen queue, per phase ('ramp', 'settle', then the phases'). */
  listenQueueMax: Record<string, number>;
  generatorEventLoopUtilization: number;
}

export async function runReplayStreams(o: StreamsOptions): Promise<StreamsResult> {
  const rand = mulberry32(o.seed);
  // Every stream reads into this one buffer: a read's bytes are counted (and a response's head
  // copied) before the callback returns, so no stream needs one of its own.
  const shared = Buffer.allocUnsafe(1 << 20);
  const lead = o.rateBytesPerS * o.leadS;
  const totalS = o.rampS + o.phases.reduce((a, p) => a + p.seconds, 0);
  // Start far enough from the end that no stream runs out of file before the run ends.
  const maxOffset = Math.max(0, o.fileSize - Math.ceil(lead + o.rateBytesPerS * (totalS + 10)));
  const offset = () => Math.floor(rand() * maxOffset);
  const streams: StreamState[] = [];
  const failures: Record<string, number> = {};
  const failureExamples: string[] = [];
  const openTimes: number[] = [];
  let phase = 'ramp';
  const phaseBytes = new Map<string, number>();
  const seekFirst = new Map<string, number[]>();
  const seekHeaders = new Map<string, number[]>();
  let tracking = true; // underrun tracking (ramp + phases; not during teardown)

  const failStream = (s: StreamState, kind: string, detail: string) => {
    if (s.error) return;
    s.error = kind;
    failures[kind] = (failures[kind] ?? 0) + 1;
    if (failureExamples.length < 5) failureExamples.push(`stream ${s.idx}: ${detail}`);
    s.sock?.destroy();
    s.sock = null;
  };

  const budget = (s: StreamState, now: number) => (s.firstByteAt ? lead + (o.rateBytesPerS * (now - s.firstByteAt)) / 1000 : lead);

  const request = (from: number) => Buffer.from(`GET ${o.path} HTTP/1.1\r\nhost: ${o.host}:${o.port}\r\nuser-agent: confidant-bench-replay\r\nrange: bytes=${from}-\r\n`, 'latin1');
  const open = (s: StreamState, seek: boolean) => {
    const gen = ++s.gen;
    const from = offset();
    const length = o.fileSize - from;
    s.issuedAt = performance.now();
    s.firstByteAt = 0;
    s.received = 0;
    s.paused = false;
    s.seekPhase = seek ? phase : null;
    let head: Buffer | null = null;
    let inBody = false;
    // Called for every read, with the bytes in the one buffer all streams share; returning false
    // pauses the socket (the kernel's receive window then closes, as for a player that has enough).
    const onRead = (n: number, b: Uint8Array): boolean => {
      if (gen !== s.gen || s.error) return false;
      const now = performance.now();
      let body = n;
      if (!inBody) {
        const piece = Buffer.from(b.subarray(0, n)); // a copy: `b` is reused by the next read
        head = head ? Buffer.concat([head, piece]) : piece;
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) {
          if (head.length > 65_536) failStream(s, 'bad response', 'response header over 64 KiB');
          return !s.error;
        }
        const text = head.toString('latin1', 0, end);
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0);
        const announced = Number(/\r\ncontent-length:\s*(\d+)/i.exec(text)?.[1] ?? NaN);
        if (status !== 206) {
          failStream(s, `HTTP ${status}`, `HTTP ${status} ${head.toString('latin1', end + 4, end + 204)}`);
          return false;
        }
        if (announced !== length) {
          failStream(s, 'bad response', `content-length ${announced}, wanted ${length}`);
          return false;
        }
        if (s.seekPhase) (seekHeaders.get(s.seekPhase) ?? seekHeaders.set(s.seekPhase, []).get(s.seekPhase)!).push(now - s.issuedAt);
        inBody = true;
        body = head.length - (end + 4);
        head = null;
        if (body === 0) return true;
      }
      if (!s.firstByteAt) {
        s.firstByteAt = now;
        const ms = now - s.issuedAt;
        if (s.seekPhase) (seekFirst.get(s.seekPhase) ?? seekFirst.set(s.seekPhase, []).get(s.seekPhase)!).push(ms);
        else openTimes.push(ms);
      }
      s.received += body;
      s.bytes += body;
      phaseBytes.set(phase, (phaseBytes.get(phase) ?? 0) + body);
      if (s.received > length) {
        failStream(s, 'bad response', `${s.received - length} bytes past the end of the response`);
        return false;
      }
      if (s.received === length) {
        s.ended = true;
        s.sock?.destroy();
        s.sock = null;
        return false;
      }
      if (s.received >= budget(s, now)) {
        s.paused = true;
        return false;
      }
      return true;
    };
    const sock = net.connect({ host: o.host, port: o.port, onread: { buffer: shared, callback: onRead } });
    sock.setNoDelay(true);
    sock.once('connect', () => gen === s.gen && sock.write(Buffer.concat([request(from), s.cookieLine])));
    sock.on('error', (err) => gen === s.gen && failStream(s, 'socket error', err.message));
    sock.once('close', () => gen === s.gen && !s.ended && failStream(s, 'closed early', `the server closed the connection after ${s.received} of ${length} body bytes`));
    s.sock = sock;
  };
  const elu0 = performance.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();

  const listenQueueMax: Record<string, number> = {};
  const queueSampler = o.listenQueue
    ? setInterval(() => {
        const q = o.listenQueue!();
        if (Number.isFinite(q)) listenQueueMax[phase] = Math.max(listenQueueMax[phase] ?? 0, q);
      }, 100)
    : null;

  // Ticker: resume streams that have played into their lead, check for running dry, time-outs.
  const ticker = setInterval(() => {
    const now = performance.now();
    for (const s of streams) {
      if (s.error || s.ended || !s.sock) continue;
      if (!s.firstByteAt) {
        if (now - s.issuedAt > o.timeoutMs) failStream(s, 'timeout', `no first byte after ${o.timeoutMs} ms`);
        continue;
      }
      if (tracking) {
        const played = (o.rateBytesPerS * (now - s.firstByteAt)) / 1000;
        if (s.received < played) s.worstDryMs = Math.max(s.worstDryMs, ((played - s.received) / o.rateBytesPerS) * 1000);
      }
      // Hysteresis, as a media element's buffering has: paused once it holds `lead` ahead of
      // playback, resumed once it holds only half of that. Resuming as soon as it is under `lead`
      // again made every stream pause and resume on every tick (20 times a second, a few kilobytes
      // each): 40,000 pause/resume cycles a second at 2,000 streams, on both ends, that no player makes.
      if (s.paused && s.received < budget(s, now) - lead / 2) {
        s.paused = false;
        s.sock.resume();
      }
    }
  }, 50);

  // Ramp: open the streams evenly.
  const sessions = o.cookies.length;
  await new Promise<void>((resolve) => {
    const every = (o.rampS * 1000) / o.streams;
    const tick = setInterval(() => {
      const due = Math.min(o.streams, Math.floor((performance.now() - t0) / every) + 1);
      while (streams.length < due) {
        const s: StreamState = {
          idx: streams.length,
          cookieLine: Buffer.from(`cookie: ${o.cookies[streams.length % sessions]!}\r\n\r\n`, 'latin1'),
          sock: null,
          gen: 0,
          issuedAt: 0,
          firstByteAt: 0,
          received: 0,
          paused: false,
          seekPhase: null,
          error: null,
          worstDryMs: 0,
          seeks: 0,
          bytes: 0,
          ended: false,
        };
        streams.push(s);
        open(s, false);
      }
      if (streams.length >= o.streams) {
        clearInterval(tick);
        resolve();
      }
    }, 10);
  });
  const rampEnd = performance.now();
  phaseBytes.set('ramp', phaseBytes.get('ramp') ?? 0);
  const opened = () => streams.filter((s) => s.firstByteAt > 0 && !s.error).length;
  o.log(`  ramp: ${streams.length} streams requested in ${((rampEnd - t0) / 1000).toFixed(1)} s; ${opened()} receiving`);
  // Settle: the phases measure streams held, so they start once every stream has its first byte
  // (a stream still waiting after timeoutMs has failed, by the ticker). Openings arrive faster in
  // the ramp than a busy Node server accepts them (one connection per turn of its event loop), and
  // a backlog left from the ramp would be timed as the first seeks' wait.
  phase = 'settle';
  while (streams.some((s) => !s.error && s.sock && !s.firstByteAt) && performance.now() - rampEnd < o.timeoutMs + 500) await new Promise((r) => setTimeout(r, 20));
  const settleS = (performance.now() - rampEnd) / 1000;
  o.log(`  settled: ${opened()} receiving after ${settleS.toFixed(1)} s more`);

  const sampler = o.everySecond ? setInterval(o.everySecond, 1000) : null;
  const phaseResults: PhaseResult[] = [];
  for (const p of o.phases) {
    await p.onStart?.();
    phase = p.name;
    phaseBytes.set(p.name, 0);
    const pStart = performance.now();
    const genLoop = monitorEventLoopDelay({ resolution: 10 });
    genLoop.enable();
    let seeks = 0;
    const seeker =
      p.seeksPerS > 0
        ? setInterval(
            () => {
              const due = Math.floor(((performance.now() - pStart) / 1000) * p.seeksPerS);
              while (seeks < due) {
                // A stream that is playing (has its first byte), not already seeking.
                let pick: StreamState | undefined;
                for (let tries = 0; tries < 20 && !pick; tries++) {
                  const s = streams[Math.floor(rand() * streams.length)]!;
                  if (!s.error && !s.ended && s.sock && s.firstByteAt > 0) pick = s;
                }
                if (!pick) break;
                seeks++;
                pick.seeks++;
                // As a media element does: abandon the current request, ask for the new position.
                pick.gen++; // its connection's last events are ignored
                pick.sock!.destroy();
                open(pick, true);
              }
            },
            Math.max(5, Math.floor(1000 / p.seeksPerS / 2)),
          )
        : null;
    await new Promise((r) => setTimeout(r, p.seconds * 1000));
    if (seeker) clearInterval(seeker);
    genLoop.disable();
    const pEnd = performance.now();
    phaseResults.push({
      name: p.name,
      seconds: (pEnd - pStart) / 1000,
      seeks,
      seekFirstByteMs: summarise([]),
      seekHeadersMs: summarise([]),
      bytesPerS: (phaseBytes.get(p.name) ?? 0) / ((pEnd - pStart) / 1000),
      openStreams: streams.filter((s) => !s.error && !s.ended && s.sock).length,
      generatorLoopDelayMs: { p50: genLoop.percentile(50) / 1e6, p99: genLoop.percentile(99) / 1e6, max: genLoop.max / 1e6 },
    });
  }
  await o.afterPhases?.();
  // Drain: seeks issued in a phase's last moments are timed too (up to timeoutMs; the ticker fails slower ones).
  phase = 'drain';
  const drainFrom = performance.now();
  while (streams.some((s) => !s.error && s.sock && !s.firstByteAt) && performance.now() - drainFrom < o.timeoutMs + 500) await new Promise((r) => setTimeout(r, 20));
  for (const pr of phaseResults) {
    pr.seekFirstByteMs = summarise(seekFirst.get(pr.name) ?? []);
    pr.seekHeadersMs = summarise(seekHeaders.get(pr.name) ?? []);
  }
  tracking = false;
  if (sampler) clearInterval(sampler);
  const cpu = process.cpuUsage(cpu0);
  const wall = performance.now() - t0;
  const elu = performance.eventLoopUtilization(elu0).utilization;
  clearInterval(ticker);
  if (queueSampler) clearInterval(queueSampler);

  // Requests still waiting for their first byte (seeks issued in the last moments) are not timed;
  // one waiting longer than timeoutMs was already failed by the ticker.
  const healthyList = streams.filter((s) => !s.error && s.worstDryMs === 0);
  const result: StreamsResult = {
    streams: o.streams,
    opened: openTimes.length,
    openFirstByteMs: summarise(openTimes),
    phases: phaseResults,
    healthy: healthyList.length,
    ranDry: streams.filter((s) => !s.error && s.worstDryMs > 0).length,
    worstDryMs: summarise(streams.filter((s) => s.worstDryMs > 0).map((s) => s.worstDryMs)),
    failed: streams.filter((s) => s.error).length,
    failures,
    failureExamples,
    generatorCpuCores: (cpu.user + cpu.system) / 1000 / wall,
    generatorEventLoopUtilization: elu,
    settleS,
    listenQueueMax,
  };
  // Teardown: every stream abandoned at once (each is audited by the service as cut short).
  for (const s of streams) {
    s.gen++;
    s.sock?.destroy();
    s.sock = null;
  }
  return result;
}
