import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export class DataDirInUse extends Error {}

/**
 * PGlite is one process's database: two processes on one data directory would corrupt it.
 * A pid file refuses the second one with a clear message.
 */
export function lockDataDir(dataDir: string): () => void {
  const file = path.join(dataDir, 'confidant.pid');
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    if (pid && pid !== process.pid && isAlive(pid)) {
      throw new DataDirInUse(
        `The embedded database in ${dataDir} is in use by another Confidant process (pid ${pid}). Stop it first, or use DATABASE_URL.`,
      );
    }
  } catch (err) {
    if (err instanceof DataDirInUse) throw err;
  }
  writeFileSync(file, String(process.pid));
  return () => {
    try {
      if (readFileSync(file, 'utf8').trim() === String(process.pid)) rmSync(file);
    } catch {
      // already gone
    }
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
