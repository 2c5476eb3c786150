// Opens the embedded PostgreSQL (PGlite) the way Confidant runs it, on whichever thread imports
// this: the embedded database's worker (pglite-worker.mjs), or the main thread when a caller asks
// for PGlite in-thread (benchmarks). Plain JavaScript: a worker thread has no TypeScript loader.
import { closeSync, existsSync, fdatasyncSync, fsyncSync, openSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { NodeFS } from '@electric-sql/pglite/nodefs';

// int8 as number (counts, sequence numbers stay far below 2^53); date as its ISO text, never a
// local-midnight Date. The same as the PostgreSQL driver's type parsers (database.ts).
export const PARSERS = { 20: (v) => Number(v), 1082: (v) => v };

/**
 * PGlite's Emscripten NODEFS has no fsync stream operation, so fsync() does nothing, and its
 * fdatasync() is a no-op in the syscall layer; PGlite also starts PostgreSQL with -F (fsync off).
 * Together no commit ever reached the disk before it was acknowledged. With this file system,
 * fsync() of any file or directory is a real fdatasync(2), and PostgreSQL runs with fsync on and
 * wal_sync_method=fsync: each commit fsyncs its WAL segment before it returns, a checkpoint fsyncs
 * the data files, a new WAL segment and its directory are synced before use.
 */
class SyncedNodeFS extends NodeFS {
  async init(pg, opts) {
    const r = await super.init(pg, opts);
    r.emscriptenOpts.preRun.push((mod) => {
      // tryFSOperation turns a failure into the errno PostgreSQL sees (it then PANICs rather than
      // acknowledge a commit it could not flush).
      mod.NODEFS.stream_ops.fsync = (stream) => {
        mod.NODEFS.tryFSOperation(() => fdatasyncSync(stream.nfd));
        return 0;
      };
    });
    return r;
  }
}

export const DURABLE_START_PARAMS = [...PGlite.defaultStartParams.filter((p) => p !== '-F'), '-c', 'wal_sync_method=fsync'];

/**
 * Opens PGlite: on `dataDir` durably (see SyncedNodeFS), or in memory without one. `loadDataDir`
 * (a tar dump) seeds a database that does not exist yet (PGlite refuses it over an existing one).
 */
export async function openPGliteEngine({ dataDir, loadDataDir }) {
  const seed = loadDataDir ? { loadDataDir: loadDataDir instanceof Blob ? loadDataDir : new Blob([loadDataDir]) } : {};
  const assets = await engineAssets();
  if (!dataDir) {
    const pg = new PGlite({ ...seed, ...assets, parsers: PARSERS });
    await pg.waitReady;
    return pg;
  }
  const fresh = !existsSync(path.join(dataDir, 'PG_VERSION'));
  const pg = new PGlite({ dataDir, fs: new SyncedNodeFS(dataDir), startParams: DURABLE_START_PARAMS, ...seed, ...assets, parsers: PARSERS });
  await pg.waitReady;
  // initdb's output (or the loaded dump) is copied in without a single fsync; like initdb's own
  // sync_pgdata, make it durable before the first commit can depend on it.
  if (fresh) syncTree(dataDir);
  return pg;
}

let assets;
/**
 * PGlite's WebAssembly compiled, and its file-system bundle read, once per thread: each database
 * opened here after the first (a test process opens dozens; a worker that comes back after a
 * crash opens one more) starts about a third faster.
 */
function engineAssets() {
  assets ??= (async () => {
    const dist = path.dirname(createRequire(import.meta.url).resolve('@electric-sql/pglite'));
    const [wasm, data] = await Promise.all([readFile(path.join(dist, 'pglite.wasm')), readFile(path.join(dist, 'pglite.data'))]);
    return { pgliteWasmModule: await WebAssembly.compile(wasm), fsBundle: new Blob([data]) };
  })();
  return assets;
}

function syncTree(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) syncTree(p);
    else if (entry.isFile()) syncPath(p);
  }
  syncPath(dir);
  syncPath(path.dirname(dir));
}

function syncPath(p) {
  const fd = openSync(p, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
