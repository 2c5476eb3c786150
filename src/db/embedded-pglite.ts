import { Worker } from 'node:worker_threads';
import type { PGlite } from '@electric-sql/pglite';
import { openPGliteEngine } from './pglite-engine.mjs';

/** A statement's answer: its rows as objects, and how many rows it changed. */
export interface EmbeddedResult {
  rows: unknown[];
  affectedRows?: number | undefined;
}

/** Which incarnation of the embedded database a statement belongs to (see EmbeddedPGlite). */
export interface AtGeneration {
  generation?: number | undefined;
}

/** The embedded PostgreSQL as the Kysely dialect and openPGlite use it, on a worker or in-thread. */
export interface EmbeddedPostgres {
  readonly waitReady: Promise<void>;
  /** Changes whenever the database behind this object is replaced (EmbeddedPGlite respawns it). */
  readonly generation: number;
  /** One statement with parameters (extended protocol). */
  query(sql: string, params: readonly unknown[], at?: AtGeneration): Promise<EmbeddedResult>;
  /** Any number of statements without parameters (simple protocol); answers with the last one's result. */
  exec(sql: string, at?: AtGeneration): Promise<EmbeddedResult>;
  /**
   * Calls `onMessage` with each NOTIFY payload on `channel`; the returned function stops it. Once
   * the database has been replaced (and listens again), `onReconnect` runs: what was sent
   * meanwhile is lost.
   */
  listen(channel: string, onMessage: (payload: string) => void, onReconnect?: () => void): Promise<() => Promise<void>>;
  /** The whole data directory as an uncompressed tar (what `loadDataDir` takes). */
  dumpDataDir(): Promise<Uint8Array<ArrayBuffer>>;
  close(): Promise<void>;
}

export interface EmbeddedSource {
  /** Where the database lives; without one it is in memory (and lost with the process). */
  dataDir?: string | undefined;
  /** A dump (dumpDataDir) to start a database that does not exist yet from. */
  loadDataDir?: Blob | Uint8Array<ArrayBuffer> | undefined;
}

/** What happens to the worker after it first started. None carries data from the database. */
export type EmbeddedPGliteEvent =
  | { type: 'lost'; generation: number; pending: number; cause: Error }
  | { type: 'respawning'; attempt: number; delayMs: number }
  | { type: 'respawned'; generation: number; attempt: number; startMs: number }
  | { type: 'respawn-failed'; attempt: number; cause: Error }
  | { type: 'relisten-failed'; channel: string; cause: Error };

export interface EmbeddedPGliteOptions extends EmbeddedSource {
  onEvent?: ((event: EmbeddedPGliteEvent) => void) | undefined;
  /** Delay before the first respawn after a crash, doubled for each failed attempt up to `max`. */
  respawnDelayMs?: { first: number; max: number } | undefined;
}

/**
 * The embedded database stopped under a statement (its worker died) or has not come back yet.
 * Its code is SQLSTATE connection_failure: like a dropped server connection, whatever was in
 * flight may or may not have committed, and an open transaction is gone.
 */
export class EmbeddedDatabaseLost extends Error {
  override readonly name = 'EmbeddedDatabaseLost';
  readonly code = '08006';
  constructor(cause?: unknown) {
    super('The embedded database stopped; it is being restarted', cause === undefined ? undefined : { cause });
  }
}

const WORKER_URL = new URL('./pglite-worker.mjs', import.meta.url);

/** The fields of a PostgreSQL error that cross from the worker (pglite-worker.mjs, ERROR_FIELDS). */
interface WorkerError {
  name: string;
  message: string;
  [field: string]: unknown;
}

type Request =
  | { op: 'query'; sql: string; params: readonly unknown[] }
  | { op: 'exec'; sql: string }
  | { op: 'listen' | 'unlisten'; channel: string }
  | { op: 'dump' }
  | { op: 'close' };

type WorkerMessage =
  | { id: number; result: unknown }
  | { id: number; error: WorkerError }
  | { channel: string; payload: string }
  | { ready: true }
  | { failed: WorkerError };

function rebuildError(e: WorkerError): Error {
  const err = new Error(e.message) as Error & Record<string, unknown>;
  for (const [k, v] of Object.entries(e)) if (k !== 'message') err[k] = v;
  return err;
}

interface Subscriber {
  onMessage: (payload: string) => void;
  onReconnect: (() => void) | undefined;
}

type State = 'starting' | 'ready' | 'lost' | 'closing' | 'closed';

/**
 * PGlite on a worker thread, so that a statement running in it never blocks the main thread:
 * while the database works, connections are still accepted and other requests still parsed.
 * Every method posts one request; the worker runs them one at a time, in order (PGlite has one
 * connection). Errors come back as `Error`s with PostgreSQL's fields (code, constraint, detail …).
 *
 * If the worker dies, every call in flight rejects with EmbeddedDatabaseLost (08006), and so does
 * every call until a new worker is up: it is started on the same options after a backoff, and
 * listens again on every channel that still has a listener. A statement sent with the generation
 * of a previous worker is refused the same way, so a transaction never continues (outside any
 * transaction) on the worker that replaced the one it began on. The data-directory lock is the
 * process's, so the new worker may open the same directory; it does so only once the old thread
 * has exited. A database without a data directory comes back as it started (from `loadDataDir`,
 * or empty): what it held is gone with the worker.
 */
export class EmbeddedPGlite implements EmbeddedPostgres {
  readonly waitReady: Promise<void>;
  #generation = 0;
  #state: State = 'starting';
  #worker: Worker | undefined;
  #readyAt = 0;
  #attempt = 0;
  #respawnStartedAt = 0;
  #respawnTimer: NodeJS.Timeout | undefined;
  #seq = 0;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly #listeners = new Map<string, Set<Subscriber>>();
  #closing: Promise<void> | undefined;
  #exited: Promise<void> = Promise.resolve();
  #settleReady!: { resolve: () => void; reject: (e: unknown) => void };
  #seed: Blob | undefined;
  readonly #dataDir: string | undefined;
  readonly #onEvent: (event: EmbeddedPGliteEvent) => void;
  readonly #delay: { first: number; max: number };

  constructor(opts: EmbeddedPGliteOptions) {
    this.#dataDir = opts.dataDir;
    this.#seed = opts.loadDataDir === undefined ? undefined : opts.loadDataDir instanceof Blob ? opts.loadDataDir : new Blob([opts.loadDataDir]);
    this.#onEvent = opts.onEvent ?? (() => {});
    this.#delay = opts.respawnDelayMs ?? { first: 100, max: 5_000 };
    this.waitReady = new Promise<void>((resolve, reject) => (this.#settleReady = { resolve, reject }));
    // Whoever awaits waitReady sees a failure to start; nobody else should crash on it.
    this.waitReady.catch(() => {});
    this.#spawn().catch((err: unknown) => {
      this.#state = 'closed';
      this.#settleReady.reject(err);
    });
  }

  get generation(): number {
    return this.#generation;
  }

  query(sql: string, params: readonly unknown[], at?: AtGeneration): Promise<EmbeddedResult> {
    return this.#request({ op: 'query', sql, params }, at) as Promise<EmbeddedResult>;
  }

  exec(sql: string, at?: AtGeneration): Promise<EmbeddedResult> {
    return this.#request({ op: 'exec', sql }, at) as Promise<EmbeddedResult>;
  }

  async listen(channel: string, onMessage: (payload: string) => void, onReconnect?: () => void): Promise<() => Promise<void>> {
    let subscribers = this.#listeners.get(channel);
    if (!subscribers) this.#listeners.set(channel, (subscribers = new Set()));
    const me: Subscriber = { onMessage, onReconnect };
    subscribers.add(me);
    const own = subscribers;
    if (own.size === 1) {
      try {
        await this.#request({ op: 'listen', channel });
      } catch (err) {
        this.#unsubscribe(channel, own, me);
        throw err;
      }
    }
    return async () => {
      if (this.#unsubscribe(channel, own, me) && this.#state === 'ready') await this.#request({ op: 'unlisten', channel }).catch(() => {});
    };
  }

  /** True when that was the channel's last subscriber. */
  #unsubscribe(channel: string, subscribers: Set<Subscriber>, me: Subscriber): boolean {
    if (!subscribers.delete(me) || subscribers.size > 0 || this.#listeners.get(channel) !== subscribers) return false;
    this.#listeners.delete(channel);
    return true;
  }

  dumpDataDir(): Promise<Uint8Array<ArrayBuffer>> {
    return this.#request({ op: 'dump' }) as Promise<Uint8Array<ArrayBuffer>>;
  }

  close(): Promise<void> {
    return (this.#closing ??= this.#shutdown());
  }

  /**
   * Ends the current worker as a crash would (tests and fault drills): calls in flight reject with
   * EmbeddedDatabaseLost and a new worker is started.
   */
  async terminateWorker(): Promise<void> {
    await this.#worker?.terminate();
  }

  #request(req: Request, at?: AtGeneration): Promise<unknown> {
    if (this.#state === 'closing' || this.#state === 'closed') return Promise.reject(new Error('The embedded database is closed'));
    if (this.#state === 'lost' || (at?.generation !== undefined && at.generation !== this.#generation)) {
      return Promise.reject(new EmbeddedDatabaseLost());
    }
    return this.#post(this.#worker!, req);
  }

  #post(worker: Worker, req: Request): Promise<unknown> {
    const id = ++this.#seq;
    return new Promise((resolve, reject) => {
      try {
        worker.postMessage({ ...req, id });
      } catch (err) {
        // A parameter that cannot be sent to another thread (a function, a symbol …).
        reject(err as Error);
        return;
      }
      this.#pending.set(id, { resolve, reject });
      this.#keepAlive();
    });
  }

  /** The worker keeps the process alive only while someone waits for it, as an idle in-thread PGlite would not. */
  #keepAlive() {
    const w = this.#worker;
    if (!w) return;
    if (this.#pending.size > 0 || this.#state === 'starting' || this.#state === 'closing') w.ref();
    else w.unref();
  }

  #rejectPending(err: () => Error) {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(err());
    this.#keepAlive();
  }

  async #spawn(): Promise<void> {
    // Once a data directory holds the database, it is reopened as it is: a dump is only for the start.
    const seed = this.#seed ? await this.#seed.arrayBuffer() : undefined;
    if (this.#dataDir !== undefined) this.#seed = undefined;
    if (this.#state === 'closing' || this.#state === 'closed') return;
    const worker = new Worker(WORKER_URL, {
      workerData: { dataDir: this.#dataDir, loadDataDir: seed },
      transferList: seed ? [seed] : [],
    });
    this.#worker = worker;
    this.#keepAlive();
    let cause: Error | undefined;
    let exited!: () => void;
    this.#exited = new Promise<void>((resolve) => (exited = resolve));
    const gone = (err: Error) => {
      if (cause) return;
      cause = err;
      this.#workerGone(worker, err);
      void worker.terminate();
    };
    worker.on('message', (m: WorkerMessage) => {
      if ('id' in m) {
        const p = this.#pending.get(m.id);
        if (!p) return;
        this.#pending.delete(m.id);
        this.#keepAlive();
        if ('error' in m) p.reject(rebuildError(m.error));
        else p.resolve(m.result);
      } else if ('channel' in m) {
        for (const sub of this.#listeners.get(m.channel) ?? []) sub.onMessage(m.payload);
      } else if ('ready' in m) {
        this.#workerReady(worker);
      } else if ('failed' in m) {
        gone(rebuildError(m.failed));
      }
    });
    worker.on('error', (err) => gone(err));
    worker.on('exit', (code) => {
      gone(new Error(`The embedded database's worker exited (code ${code})`));
      exited();
      this.#workerExited(worker, cause!);
    });
  }

  #workerReady(worker: Worker) {
    if (worker !== this.#worker || (this.#state !== 'starting' && this.#state !== 'lost')) return;
    const respawned = this.#state === 'lost';
    this.#state = 'ready';
    this.#generation++;
    this.#readyAt = Date.now();
    this.#keepAlive();
    if (!respawned) {
      this.#settleReady.resolve();
      return;
    }
    this.#onEvent({ type: 'respawned', generation: this.#generation, attempt: this.#attempt, startMs: Date.now() - this.#respawnStartedAt });
    for (const [channel, subscribers] of this.#listeners) {
      this.#request({ op: 'listen', channel }).then(
        () => {
          for (const sub of subscribers) sub.onReconnect?.();
        },
        (err: Error) => this.#onEvent({ type: 'relisten-failed', channel, cause: err }),
      );
    }
  }

  /** The worker died or failed to start: nothing sent to it will be answered. */
  #workerGone(worker: Worker, cause: Error) {
    if (worker !== this.#worker) return;
    if (this.#state === 'ready') {
      this.#state = 'lost';
      // A database that had been up a while starts its backoff afresh; one that keeps dying does not.
      if (Date.now() - this.#readyAt > 30_000) this.#attempt = 0;
      this.#onEvent({ type: 'lost', generation: this.#generation, pending: this.#pending.size, cause });
      this.#rejectPending(() => new EmbeddedDatabaseLost(cause));
    } else if (this.#state === 'starting') {
      this.#rejectPending(() => cause);
    } else if (this.#state === 'lost') {
      this.#onEvent({ type: 'respawn-failed', attempt: this.#attempt, cause });
    } else {
      this.#rejectPending(() => new Error('The embedded database is closed'));
    }
  }

  /** Only once its thread has ended may another worker open the same data directory. */
  #workerExited(worker: Worker, cause: Error) {
    if (worker !== this.#worker) return;
    this.#worker = undefined;
    if (this.#state === 'starting' || this.#state === 'closing') {
      // Never came up: the caller of waitReady decides (no respawn loop on a database that cannot open).
      if (this.#state === 'starting') this.#state = 'closed';
      this.#rejectPending(() => cause);
      this.#settleReady.reject(cause);
      return;
    }
    if (this.#state === 'lost') this.#scheduleRespawn();
  }

  #scheduleRespawn() {
    const delayMs = Math.min(this.#delay.first * 2 ** this.#attempt, this.#delay.max);
    this.#attempt++;
    this.#onEvent({ type: 'respawning', attempt: this.#attempt, delayMs });
    this.#respawnTimer = setTimeout(() => {
      this.#respawnTimer = undefined;
      this.#respawnStartedAt = Date.now();
      this.#spawn().catch((err: Error) => {
        this.#onEvent({ type: 'respawn-failed', attempt: this.#attempt, cause: err });
        if (this.#state === 'lost' && !this.#worker) this.#scheduleRespawn();
      });
    }, delayMs);
    this.#respawnTimer.unref();
  }

  async #shutdown(): Promise<void> {
    clearTimeout(this.#respawnTimer);
    const worker = this.#worker;
    const wasReady = this.#state === 'ready';
    this.#state = 'closing';
    if (worker) {
      // Behind whatever was already sent: PGlite then shuts PostgreSQL down (a checkpoint).
      if (wasReady) await this.#post(worker, { op: 'close' }).catch(() => {});
      await worker.terminate();
      await this.#exited;
    }
    this.#state = 'closed';
    this.#rejectPending(() => new Error('The embedded database is closed'));
  }
}

/** PGlite on the calling thread, behind the same interface (benchmarks compare the two). */
export class InThreadPGlite implements EmbeddedPostgres {
  readonly waitReady: Promise<void>;
  readonly generation = 1;
  #pg: PGlite | undefined;

  constructor(opts: EmbeddedSource) {
    this.waitReady = openPGliteEngine(opts).then((pg) => {
      this.#pg = pg;
    });
    this.waitReady.catch(() => {});
  }

  async query(sql: string, params: readonly unknown[]): Promise<EmbeddedResult> {
    const r = await this.#open().query(sql, params as unknown[], { rowMode: 'object' });
    return { rows: r.rows, affectedRows: r.affectedRows };
  }

  async exec(sql: string): Promise<EmbeddedResult> {
    const last = (await this.#open().exec(sql)).at(-1);
    return last ? { rows: last.rows, affectedRows: last.affectedRows } : { rows: [], affectedRows: 0 };
  }

  async listen(channel: string, onMessage: (payload: string) => void, _onReconnect?: () => void): Promise<() => Promise<void>> {
    // Never replaced: nothing to reconnect.
    const stop = await this.#open().listen(channel, onMessage);
    return () => stop();
  }

  async dumpDataDir(): Promise<Uint8Array<ArrayBuffer>> {
    return new Uint8Array(await (await this.#open().dumpDataDir('none')).arrayBuffer());
  }

  async close(): Promise<void> {
    await this.waitReady.catch(() => {});
    if (this.#pg && !this.#pg.closed) await this.#pg.close();
  }

  #open(): PGlite {
    if (!this.#pg) throw new Error('The embedded database is not open');
    return this.#pg;
  }
}
