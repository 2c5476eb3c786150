import { readFileSync } from 'node:fs';

/** Machine-wide CPU time from /proc/stat (Linux), to see how much of the box a run used. */
export interface CpuSnapshot {
  busy: number;
  total: number;
  at: number;
}

export function cpuSnapshot(): CpuSnapshot | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: total - idle, total, at: Date.now() };
  } catch {
    return null;
  }
}

/** Cores kept busy between two snapshots (0 … number of CPUs). */
export function busyCores(a: CpuSnapshot | null, b: CpuSnapshot | null, cpus: number): number {
  if (!a || !b || b.total === a.total) return NaN;
  return ((b.busy - a.busy) / (b.total - a.total)) * cpus;
}
