/**
 * bench:replay: where a request's time goes inside a child server, stage by stage, so that a seek's
 * first-byte time seen by the generator can be split into the server's parts. Each stage's
 * durations are collected since the last reset and summarised (p50/p90/p99/max); the stages are
 * measured independently, so their p99s need not add up to the seek's.
 *
 * For every request on the server (the streams' and seeks' GETs; one connection per request):
 * - `accept → request`: the connection accepted (the server's 'connection', in the loop turn that
 *   accepted it; the wait in the listen queue before is not in it) → the request's head parsed
 *   ('request'): the client's own delay in writing it, the turns of the event loop and the parse;
 * - `request → headers`: → the response's head handed to the socket (`writeHead`): everything the
 *   route does before answering;
 * - `headers → body`: → the first body bytes handed to the socket (`write`). Fastify sends a
 *   streamed answer's head with its first body bytes (the first `write` calls `writeHead`), so for
 *   the service this step is ~0 and `request → headers` holds the wait for the first bytes; the
 *   plain server calls `writeHead` first and then waits for its file's first read.
 * And, where the server gives them (`track`): how long a stage of the route's own work took; and
 * (`mark`) moments of a request's own progress, so that each request's time splits into steps.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { summarise, type LatencySummary } from './loadgen';

export type Timeline = Record<string, LatencySummary & { count: number }>;

export interface TimelineReading {
  stages: Timeline;
  parts: ReturnType<typeof parts>;
}

const ACCEPTED = Symbol('acceptedAt');

type Traced = Socket & { [ACCEPTED]?: number };

/** One request's moments, in the order they happened: [name, ms]. */
type Trace = [string, number][];

export interface TimelineOptions {
  /**
   * Tags each request (its User-Agent header, before the server reads it: `bench-trace-<n>`) so
   * that the server's own steps can be marked on its trace (`mark`), from code that sees only the
   * request context the server made of it.
   */
  tagRequests?: boolean;
}

export function requestTimeline(server: Server, opts: TimelineOptions = {}) {
  const stages = new Map<string, number[]>();
  const add = (stage: string, ms: number) => {
    let a = stages.get(stage);
    if (!a) stages.set(stage, (a = []));
    a.push(ms);
  };
  const open = new Map<string, Trace>();
  let finished: Trace[] = [];
  let n = 0;
  server.on('connection', (socket: Traced) => {
    socket[ACCEPTED] = performance.now();
  });
  // Before the server's own listener, in the same turn, once the head is parsed.
  server.prependListener('request', (req, res) => {
    const at = performance.now();
    const trace: Trace = [];
    const accepted = (req.socket as Traced)[ACCEPTED];
    if (accepted !== undefined) {
      trace.push(['accepted', accepted]);
      add('accept → request', at - accepted);
      // Only a connection's first request waited for the accept.
      delete (req.socket as Traced)[ACCEPTED];
    }
    trace.push(['request', at]);
    const tag = `bench-trace-${++n}`;
    if (opts.tagRequests) {
      req.headers['user-agent'] = tag;
      open.set(tag, trace);
    }
    let headAt = 0;
    const writeHead = res.writeHead;
    res.writeHead = function (this: typeof res, ...args: unknown[]) {
      headAt = performance.now();
      trace.push(['headers', headAt]);
      add('request → headers', headAt - at);
      return (writeHead as (...a: unknown[]) => typeof res).apply(this, args);
    } as typeof res.writeHead;
    const write = res.write;
    res.write = function (this: typeof res, ...args: unknown[]) {
      res.write = write;
      // A piped stream's first write sends the head too (writeHead, above): called first, timed after.
      const out = (write as (...a: unknown[]) => boolean).apply(this, args);
      const now = performance.now();
      if (headAt) add('headers → body', now - headAt);
      trace.push(['body', now]);
      open.delete(tag);
      finished.push(trace);
      return out;
    } as typeof res.write;
    res.once('close', () => open.delete(tag));
  });
  return {
    /** Times `fn`'s promise under `stage`, resolved or not. */
    track<T>(stage: string, started: number, p: Promise<T>): Promise<T> {
      const done = () => add(stage, performance.now() - started);
      p.then(done, done);
      return p;
    },
    /** Marks a moment on the trace of the request tagged `tag` (its first such moment only). */
    mark(tag: string | null, name: string, at = performance.now()) {
      const trace = tag ? open.get(tag) : undefined;
      if (trace && !trace.some(([m]) => m === name)) trace.push([name, at]);
    },
    reset: () => {
      stages.clear();
      finished = [];
      open.clear();
    },
    read: (): TimelineReading => ({ stages: Object.fromEntries([...stages].map(([k, v]) => [k, { ...summarise(v), count: v.length }])) as Timeline, parts: parts(finished) }),
  };
}

/**
 * Requests that got their first body byte, split into the steps between their moments (the
 * usual sequence of moments only; a request whose moments differ is left out): each step's
 * distribution, and its mean share of the slowest 5 % of requests (where a seek's tail goes).
 */
function parts(traces: Trace[]): { steps: string[]; all: Timeline; slowest: { count: number; totalMs: number; stepsMs: Record<string, number> } } | null {
  const key = (t: Trace) => t.map(([m]) => m).join(',');
  const counts = new Map<string, number>();
  for (const t of traces) counts.set(key(t), (counts.get(key(t)) ?? 0) + 1);
  const usual = [...counts].sort((a, b) => b[1] - a[1])[0]?.[0];
  if (!usual) return null;
  const same = traces.filter((t) => key(t) === usual);
  const names = same[0]!.map(([m]) => m);
  const steps = names.slice(1).map((m, i) => `${names[i]} → ${m}`);
  const rows = same.map((t) => ({ total: t[t.length - 1]![1] - t[0]![1], steps: t.slice(1).map(([, at], i) => at - t[i]![1]) }));
  const all = Object.fromEntries(steps.map((s, i) => [s, { ...summarise(rows.map((r) => r.steps[i]!)), count: rows.length }])) as Timeline;
  all['total'] = { ...summarise(rows.map((r) => r.total)), count: rows.length };
  const slow = [...rows].sort((a, b) => b.total - a.total).slice(0, Math.max(1, Math.ceil(rows.length * 0.05)));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return {
    steps,
    all,
    slowest: {
      count: slow.length,
      totalMs: mean(slow.map((r) => r.total)),
      stepsMs: Object.fromEntries(steps.map((s, i) => [s, mean(slow.map((r) => r.steps[i]!))])),
    },
  };
}
