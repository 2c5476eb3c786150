/**
 * bench:replay: where a request's time goes inside a child server, stage by stage, so that a seek's
 * first-byte time seen by the generator can be split into the server's parts. Each stage's
 * durations are collected since the last reset and summarised (p50/p90/p99/max); the stages are
 * measured independently, so their p99s need not add up to the seek's.
 *
 * For every request on the server (the streams' and seeks' GETs; one connection per request):
 * - `accept → request`: the connection accepted (the server's 'connection') → the request's head
 *   parsed ('request'): a turn or more of the event loop, and the parse;
 * - `request → headers`: → the response's head handed to the socket (`writeHead`): everything the
 *   route does before answering;
 * - `headers → body`: → the first body bytes handed to the socket (`write`).
 * And, where the server gives them (`track`): how long a stage of the route's own work took.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { summarise, type LatencySummary } from './loadgen';

export type Timeline = Record<string, LatencySummary & { count: number }>;

const ACCEPTED = Symbol('acceptedAt');

export function requestTimeline(server: Server) {
  const stages = new Map<string, number[]>();
  const add = (stage: string, ms: number) => {
    let a = stages.get(stage);
    if (!a) stages.set(stage, (a = []));
    a.push(ms);
  };
  server.on('connection', (socket: Socket & { [ACCEPTED]?: number }) => {
    socket[ACCEPTED] = performance.now();
  });
  // Before the server's own listener, in the same turn, once the head is parsed.
  server.prependListener('request', (req, res) => {
    const at = performance.now();
    const accepted = (req.socket as Socket & { [ACCEPTED]?: number })[ACCEPTED];
    if (accepted !== undefined) {
      add('accept → request', at - accepted);
      // Only a connection's first request waited for the accept.
      delete (req.socket as Socket & { [ACCEPTED]?: number })[ACCEPTED];
    }
    let headAt = 0;
    const writeHead = res.writeHead;
    res.writeHead = function (this: typeof res, ...args: unknown[]) {
      headAt = performance.now();
      add('request → headers', headAt - at);
      return (writeHead as (...a: unknown[]) => typeof res).apply(this, args);
    } as typeof res.writeHead;
    const write = res.write;
    res.write = function (this: typeof res, ...args: unknown[]) {
      res.write = write;
      if (headAt) add('headers → body', performance.now() - headAt);
      return (write as (...a: unknown[]) => boolean).apply(this, args);
    } as typeof res.write;
  });
  return {
    /** Times `fn`'s promise under `stage`, resolved or not. */
    track<T>(stage: string, started: number, p: Promise<T>): Promise<T> {
      const done = () => add(stage, performance.now() - started);
      p.then(done, done);
      return p;
    },
    reset: () => stages.clear(),
    read: (): Timeline => Object.fromEntries([...stages].map(([k, v]) => [k, { ...summarise(v), count: v.length }])),
  };
}
