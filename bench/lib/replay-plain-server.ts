/**
 * bench:replay, target (b): plain Node file streaming. A bare node:http server that answers any
 * GET with the plaintext file, honouring a Range header the way the replay route does (206 +
 * Content-Range; `bytes=a-b`, `bytes=a-`, `bytes=-n`), with fs.createReadStream and its default
 * buffers, piped to the response: the ordinary way a Node process streams a file. No auth, no
 * database, no audit, no decryption.
 *
 * argv: <file>. Commands: profile-start / profile-stop, gc, memory, loop-delay-reset / loop-delay,
 * timeline-reset / timeline (as replay-service.ts).
 */
import { createReadStream, statSync } from 'node:fs';
import http from 'node:http';
import { pipeline } from 'node:stream';
import { reportStartupFailure, serveParent } from './child';
import { cpuProfiler } from './cpu-profile';
import { gcCounters, loopDelay } from './replay-gc';
import { requestTimeline } from './replay-timeline';

const [file] = process.argv.slice(2);

function parseRange(header: string | undefined, size: number): { start: number; end: number; partial: boolean } | null {
  if (!header) return { start: 0, end: size - 1, partial: false };
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return { start: 0, end: size - 1, partial: false };
  if (m[1] === '') return { start: Math.max(0, size - Number(m[2])), end: size - 1, partial: true };
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  return start >= size || end < start ? null : { start, end, partial: true };
}

async function main() {
  const gc = gcCounters();
  const loop = loopDelay();
  if (!file) throw new Error('usage: replay-plain-server <file>');
  const size = statSync(file).size;
  const cpu = cpuProfiler();
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    const range = parseRange(req.headers.range, size);
    if (!range) {
      res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
      return;
    }
    const headers: http.OutgoingHttpHeaders = {
      'content-type': 'video/webm',
      'accept-ranges': 'bytes',
      'content-length': String(range.end - range.start + 1),
      'cache-control': 'no-store',
    };
    if (range.partial) headers['content-range'] = `bytes ${range.start}-${range.end}/${size}`;
    res.writeHead(range.partial ? 206 : 200, headers);
    pipeline(createReadStream(file, { start: range.start, end: range.end }), res, () => undefined);
  });
  server.keepAliveTimeout = 30_000;
  const timeline = requestTimeline(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  serveParent(
    port,
    {
      'profile-start': () => cpu.start(),
      'profile-stop': async () => ({ cpu: await cpu.stop() }),
      gc: () => gc(),
      'loop-delay-reset': () => loop.reset(),
      'loop-delay': () => loop.read(),
      'timeline-reset': () => timeline.reset(),
      timeline: () => timeline.read(),
      memory: () => process.memoryUsage(),
    },
    async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  );
}

main().catch(reportStartupFailure);
