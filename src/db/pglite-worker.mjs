// Hosts the embedded PostgreSQL (one PGlite instance) on a worker thread, so that a statement
// running in it never blocks the main thread's event loop (accepting connections, TLS, timers).
// The main thread's side is EmbeddedPGlite (embedded-pglite.ts). Plain JavaScript: a worker
// thread has no TypeScript loader.
//
// workerData: { dataDir?: string, loadDataDir?: ArrayBuffer (transferred) }
// To the main thread: { ready: true } once open; { failed: error } when it cannot open, or when
//   PGlite's WebAssembly instance aborted (then the worker ends);
//   { id, result } / { id, error } for each request; { channel, payload } for a notification.
// From the main thread, one at a time in order of arrival:
//   { id, op: 'query', sql, params }   → { rows, affectedRows } (rows as objects)
//   { id, op: 'exec', sql }            → the last statement's { rows, affectedRows }
//   { id, op: 'listen', channel } / { id, op: 'unlisten', channel }
//   { id, op: 'dump' }                 → Uint8Array of the data directory's tar (its buffer transferred)
//   { id, op: 'close' }                → closes PGlite; the worker then ends
import { parentPort, workerData } from 'node:worker_threads';
import { openPGliteEngine } from './pglite-engine.mjs';

// What a PostgreSQL error carries (pg-protocol's DatabaseError) that callers may look at. Never
// the statement's parameters: they can hold patient data.
const ERROR_FIELDS = [
  'code', 'severity', 'detail', 'hint', 'position', 'internalPosition', 'internalQuery', 'where',
  'schema', 'table', 'column', 'dataType', 'constraint', 'file', 'line', 'routine',
];

function describeError(err) {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) };
  const out = { name: err.name, message: err.message };
  for (const f of ERROR_FIELDS) if (err[f] !== undefined) out[f] = err[f];
  return out;
}

// The WebAssembly instance is unusable after it aborted: end the worker so that a new one is
// started, rather than answer every later statement with the same failure.
function isFatal(err) {
  return err instanceof WebAssembly.RuntimeError || (err instanceof Error && err.message.startsWith('Aborted('));
}

let pg;
const unlisteners = new Map();

async function run(msg) {
  switch (msg.op) {
    case 'query': {
      const r = await pg.query(msg.sql, msg.params, { rowMode: 'object' });
      return { result: { rows: r.rows, affectedRows: r.affectedRows } };
    }
    case 'exec': {
      // Without parameters the simple protocol runs several statements at once (migrations).
      const last = (await pg.exec(msg.sql)).at(-1);
      return { result: last ? { rows: last.rows, affectedRows: last.affectedRows } : { rows: [], affectedRows: 0 } };
    }
    case 'listen': {
      if (!unlisteners.has(msg.channel)) {
        const channel = msg.channel;
        unlisteners.set(channel, await pg.listen(channel, (payload) => parentPort.postMessage({ channel, payload })));
      }
      return { result: null };
    }
    case 'unlisten': {
      const stop = unlisteners.get(msg.channel);
      unlisteners.delete(msg.channel);
      if (stop) await stop();
      return { result: null };
    }
    case 'dump': {
      const bytes = new Uint8Array(await (await pg.dumpDataDir('none')).arrayBuffer());
      return { result: bytes, transfer: [bytes.buffer] };
    }
    case 'close': {
      await pg.close();
      return { result: null, last: true };
    }
    default:
      throw new Error(`unknown embedded database request: ${msg.op}`);
  }
}

async function serve(msg) {
  let answer;
  try {
    answer = await run(msg);
  } catch (err) {
    if (isFatal(err)) {
      // Everything in flight, this request included, is lost with the worker (08006 on the main thread).
      parentPort.postMessage({ failed: describeError(err) });
      process.exit(1);
    }
    parentPort.postMessage({ id: msg.id, error: describeError(err) });
    return;
  }
  try {
    parentPort.postMessage({ id: msg.id, result: answer.result }, answer.transfer ?? []);
  } catch (err) {
    // A value that cannot cross to the main thread (DataCloneError): the caller gets the error.
    parentPort.postMessage({ id: msg.id, error: describeError(err) });
  }
  if (answer.last) parentPort.close();
}

const { dataDir, loadDataDir } = workerData ?? {};
let tail = openPGliteEngine({ dataDir, loadDataDir: loadDataDir ? new Uint8Array(loadDataDir) : undefined }).then(
  (opened) => {
    pg = opened;
    parentPort.postMessage({ ready: true });
  },
  (err) => {
    parentPort.postMessage({ failed: describeError(err) });
    process.exit(1);
  },
);
// PGlite has one connection: requests run one after another, in the order they were sent.
parentPort.on('message', (msg) => {
  tail = tail.then(() => serve(msg));
});
