import path from 'node:path';
import { startService, type RunningService } from '../test/browser/support';
import { ensureMasterKeyFile } from '../src/modules/recordings/recording-keys';
import type { FaultPoint } from '../src/testing/fault-points';
import type { DrillDatabase } from './database';

/**
 * The real service as two processes on one PostgreSQL database, as in production: each its own
 * port, its own pools and its own detector, the same data directory for the sealed recordings and
 * their master key (production shares object storage and a key file the same way).
 */
export interface Pair {
  /** Process A: the consultation was held on it; the DPO's alert stream listens on it. */
  a: RunningService;
  /** Process B: the other patient's browser uses it. */
  b: RunningService;
  faults: FaultPoint[];
}

export async function startPair(db: DrillDatabase, dataDir: string, faults: FaultPoint[]): Promise<Pair> {
  // One recording master key file for both, made before either starts (as an operator provisions it).
  const keyFile = path.join(dataDir, 'keys', 'recording-master.key');
  await ensureMasterKeyFile(keyFile);
  const env = (demo: boolean): Record<string, string> => ({
    DATABASE_URL: db.serviceUrl,
    DATABASE_OWNER_URL: db.ownerUrl,
    DATABASE_POOL_SIZE: '8',
    DATA_DIR: dataDir,
    RECORDING_MASTER_KEY_FILE: keyFile,
    // Only process A seeds the demo clinic (idempotent, but two at once would race on it).
    CONFIDANT_DEMO: demo ? '1' : '0',
    // A consultation opens a day early, so the drill's booking can be joined at once.
    CONSULTATION_JOIN_EARLY_MINUTES: '1440',
    CONFIDANT_FAULTS: faults.join(','),
    LOG_LEVEL: 'warn',
  });
  // Together, as a deployment's instances do (migrations take an advisory lock: one runs them).
  const [ra, rb] = await Promise.allSettled([startService({ env: env(true), readyTimeoutMs: 60_000 }), startService({ env: env(false), readyTimeoutMs: 60_000 })]);
  if (ra.status === 'rejected' || rb.status === 'rejected') {
    await Promise.all([ra, rb].map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
    throw ra.status === 'rejected' ? ra.reason : (rb as PromiseRejectedResult).reason;
  }
  const a = ra.value;
  const b = rb.value;
  for (const [name, p] of [['A', a], ['B', b]] as const) {
    const armed = p.output().includes('fault points switched on for the breach drill');
    if (armed !== faults.length > 0) {
      await Promise.all([a.stop(), b.stop()]);
      throw new Error(`process ${name} did not start with the fault points ${faults.join(', ') || '(none)'}:\n${p.output()}`);
    }
  }
  return { a, b, faults };
}

export async function stopPair(pair: Pair | undefined): Promise<void> {
  if (!pair) return;
  const results = await Promise.all([pair.a.stop(15_000), pair.b.stop(15_000)]);
  for (const [i, r] of results.entries()) {
    if (r.timedOut || r.code !== 0) console.warn(`drill: process ${i === 0 ? 'A' : 'B'} did not stop cleanly: ${JSON.stringify(r)}`);
  }
}
