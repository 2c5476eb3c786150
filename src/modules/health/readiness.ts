import { randomBytes } from 'node:crypto';
import { open, statfs, unlink } from 'node:fs/promises';
import path from 'node:path';
import { classifyDatabaseError, DeadlineExceeded, raceAbort, type Database } from '../../db';

/**
 * Readiness: can this instance serve requests now? Each check answers within `timeoutMs`
 * (1 s), so a frozen database makes the probe red, not slow. The orchestrator reads the status
 * code; an operator reads which check failed and how.
 */
export type CheckState = 'ok' | 'unavailable' | 'timeout' | 'behind' | 'not_writable' | 'full';

export interface ReadinessReport {
  ready: boolean;
  checks: {
    /** Answers one statement within the timeout. */
    database: CheckState;
    /** Every migration this code ships has been applied (a database migrated further, by a newer instance, is fine). */
    migrations: CheckState;
    /** The data directory takes a durable write. */
    dataDir: CheckState;
    /** The recording store takes a durable write. */
    blobStore: CheckState;
    /** Free space under the data directory is above the configured floor. */
    disk: CheckState;
  };
  freeBytes: number | null;
}

export interface ReadinessDeps {
  db: Pick<Database, 'ping'>;
  dataDir: string;
  blobs: { probe(): Promise<void> };
  minFreeBytes: number;
  expectedMigrations: string[];
  timeoutMs?: number;
  /** Told when the answer changes (ready ↔ not ready, or which checks fail): probes come every second, logs should not. */
  onChange?: (report: ReadinessReport) => void;
}

export class Readiness {
  private inFlight: Promise<ReadinessReport> | undefined;
  private last: string | undefined;

  constructor(private readonly deps: ReadinessDeps) {}

  /** Probes arriving while one runs share its answer (an orchestrator may probe every instance every second). */
  check(): Promise<ReadinessReport> {
    this.inFlight ??= this.run()
      .then((report) => {
        const summary = JSON.stringify(report.checks);
        if (summary !== this.last) {
          this.last = summary;
          this.deps.onChange?.(report);
        }
        return report;
      })
      .finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  private async run(): Promise<ReadinessReport> {
    const timeoutMs = this.deps.timeoutMs ?? 1000;
    const within = <T>(work: Promise<T>) => {
      const signal = AbortSignal.timeout(timeoutMs);
      return { signal, result: raceAbort(work, signal, () => new DeadlineExceeded('deadline')) };
    };

    const database = (async (): Promise<{ database: CheckState; migrations: CheckState }> => {
      const signal = AbortSignal.timeout(timeoutMs);
      try {
        // The ping abandons its connection on the signal; the race answers even if it cannot.
        const { migrations } = await raceAbort(this.deps.db.ping(signal), signal, () => new DeadlineExceeded('deadline'));
        const applied = new Set(migrations);
        const missing = this.deps.expectedMigrations.filter((m) => !applied.has(m));
        return { database: 'ok', migrations: missing.length === 0 ? 'ok' : 'behind' };
      } catch (err) {
        return { database: stateOf(err), migrations: 'unavailable' };
      }
    })();
    const dataDir = settle(within(probeDirectory(this.deps.dataDir)).result);
    const blobStore = settle(within(this.deps.blobs.probe()).result);
    const disk = (async () => {
      try {
        const s = await within(statfs(this.deps.dataDir)).result;
        const free = Number(s.bavail) * Number(s.bsize);
        return { state: (free < this.deps.minFreeBytes ? 'full' : 'ok') as CheckState, free };
      } catch (err) {
        return { state: stateOf(err), free: null };
      }
    })();

    const [db, dir, blob, space] = await Promise.all([database, dataDir, blobStore, disk]);
    const checks = { database: db.database, migrations: db.migrations, dataDir: dir, blobStore: blob, disk: space.state };
    return { ready: Object.values(checks).every((c) => c === 'ok'), checks, freeBytes: space.free };
  }
}

async function settle(work: Promise<unknown>): Promise<CheckState> {
  try {
    await work;
    return 'ok';
  } catch (err) {
    const state = stateOf(err);
    return state === 'unavailable' ? 'not_writable' : state;
  }
}

function stateOf(err: unknown): CheckState {
  if (err instanceof DeadlineExceeded) return 'timeout';
  switch (classifyDatabaseError(err)) {
    case 'storage_full':
      return 'full';
    case 'timeout':
      return 'timeout';
    default:
      return 'unavailable';
  }
}

/** A small file written and flushed the way the database and the blob store write theirs, then removed. */
async function probeDirectory(dir: string): Promise<void> {
  const file = path.join(dir, `.readiness-${randomBytes(6).toString('hex')}`);
  const fh = await open(file, 'wx', 0o600);
  try {
    await fh.writeFile(randomBytes(16));
    await fh.datasync();
  } finally {
    await fh.close();
    await unlink(file).catch(() => undefined);
  }
}
