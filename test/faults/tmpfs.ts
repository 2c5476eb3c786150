import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statfsSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pidAlive } from './pg-cluster';

/**
 * A small tmpfs for the embedded disk-full fault: mounted on a fresh directory, resizable, filled
 * to ENOSPC by a filler file and freed again, and always unmounted (even by an 'exit' handler, and
 * by the next run for a run that was killed).
 */

const PREFIX = 'confidant-tmpfs-';

function mountedTmpfs(): string[] {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[2] === 'tmpfs' && f[1]?.includes(`/${PREFIX}`))
    .map((f) => f[1]!.replace(/\\040/g, ' '));
}

function unmountSync(dir: string): void {
  for (let i = 0; i < 5 && mountedTmpfs().includes(dir); i++) {
    if (spawnSync('umount', [dir]).status === 0) break;
    spawnSync('sleep', ['0.2']);
  }
  // Still busy (a process that would not die holds a file there): detach it now.
  if (mountedTmpfs().includes(dir)) spawnSync('umount', ['-l', dir]);
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch {
    // left for the sweep
  }
}

/** Unmounts tmpfs mounts of this helper whose test process has died. */
export function sweepAbandonedMounts(): string[] {
  const swept: string[] = [];
  for (const dir of mountedTmpfs()) {
    const m = new RegExp(`/${PREFIX}(\\d+)-`).exec(dir);
    if (m && !pidAlive(Number(m[1]))) {
      unmountSync(dir);
      swept.push(dir);
    }
  }
  return swept;
}

/** Why a tmpfs cannot be mounted here, or undefined (tries one, 1 MB, and unmounts it). */
export function tmpfsUnavailableReason(): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux';
  if (process.getuid?.() !== 0) return 'needs root to mount a tmpfs';
  const dir = mkdtempSync(path.join(tmpdir(), `${PREFIX}${process.pid}-probe-`));
  try {
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { encoding: 'utf8' });
    if (r.status !== 0) return `cannot mount a tmpfs: ${(r.stderr || r.error?.message || '').trim()}`;
    return undefined;
  } finally {
    unmountSync(dir);
  }
}

export interface Tmpfs {
  dir: string;
  sizeBytes(): number;
  usedBytes(): number;
  freeBytes(): number;
  /** Remounts with a new size (it may shrink to no less than what is in use). */
  resize(megabytes: number): void;
  /** Writes a filler file until the filesystem refuses (ENOSPC); returns the bytes written. */
  fill(file?: string): number;
  /** Deletes the filler. */
  free(): void;
  unmount(): void;
}

export function mountTmpfs(megabytes: number): Tmpfs {
  sweepAbandonedMounts();
  const dir = mkdtempSync(path.join(tmpdir(), `${PREFIX}${process.pid}-`));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${megabytes}m,mode=0700`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`mount tmpfs on ${dir}: ${r.stderr}`);
  }
  let mounted = true;
  const onExit = () => {
    if (mounted) unmountSync(dir);
  };
  process.on('exit', onExit);
  const fillers: string[] = [];
  const stats = () => statfsSync(dir);
  return {
    dir,
    sizeBytes: () => stats().blocks * stats().bsize,
    usedBytes: () => {
      const s = stats();
      return (s.blocks - s.bfree) * s.bsize;
    },
    freeBytes: () => {
      const s = stats();
      return s.bavail * s.bsize;
    },
    resize: (mb) => {
      const rr = spawnSync('mount', ['-o', `remount,size=${mb}m`, dir], { encoding: 'utf8' });
      if (rr.status !== 0) throw new Error(`remount ${dir} to ${mb} MB: ${rr.stderr}`);
    },
    fill: (file = path.join(dir, `filler-${fillers.length}`)) => {
      fillers.push(file);
      const fd = openSync(file, 'w');
      let written = 0;
      try {
        // Big chunks first, then small ones for the last partial pages.
        for (const size of [1 << 20, 1 << 12]) {
          const chunk = Buffer.alloc(size, 0x5a);
          for (;;) {
            try {
              const n = writeSync(fd, chunk);
              written += n;
              if (n < size) break;
            } catch (err) {
              if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
              throw err;
            }
          }
        }
      } finally {
        closeSync(fd);
      }
      return written;
    },
    free: () => {
      for (const f of fillers.splice(0)) if (existsSync(f)) unlinkSync(f);
    },
    unmount: () => {
      if (!mounted) return;
      unmountSync(dir);
      mounted = mountedTmpfs().includes(dir);
      if (!mounted) process.off('exit', onExit);
    },
  };
}
