import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

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

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** utime + stime of a local process (all its threads), ms; NaN if it cannot be read. */
export function procCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat(5); f[0] is field 3.
    return ((Number(f[11]) + Number(f[12])) * 1000) / clockTicks();
  } catch {
    return NaN;
  }
}

/** Per thread of a process (Linux /proc/<pid>/task/<tid>/schedstat): time on a CPU, and time runnable but waiting for one. */
export interface ThreadSched {
  name: string;
  runMs: number;
  waitMs: number;
}

export function threadSched(pid: number): Map<number, ThreadSched> {
  const out = new Map<number, ThreadSched>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const [run, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      out.set(Number(tid), { name, runMs: (run ?? 0) / 1e6, waitMs: (wait ?? 0) / 1e6 });
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out;
}

/**
 * What the threads of a process did between two readings, per wall second: the main thread (tid =
 * pid) on its own, the others together. `waitMs` is time a thread was ready to run and no CPU was
 * free for it: on a machine with more runnable threads than cores, each turn of an event loop
 * waits that much longer.
 */
export function threadSchedDelta(pid: number, a: Map<number, ThreadSched>, b: Map<number, ThreadSched>, wallMs: number) {
  const main = { runMs: 0, waitMs: 0 };
  const others = { runMs: 0, waitMs: 0, threads: 0 };
  for (const [tid, t1] of b) {
    const t0 = a.get(tid) ?? { runMs: 0, waitMs: 0 };
    const run = t1.runMs - t0.runMs;
    const wait = t1.waitMs - t0.waitMs;
    if (tid === pid) {
      main.runMs += run;
      main.waitMs += wait;
    } else if (run > 0 || wait > 0) {
      others.runMs += run;
      others.waitMs += wait;
      others.threads++;
    }
  }
  const perS = 1000 / wallMs;
  return {
    main: { runMsPerS: main.runMs * perS, waitMsPerS: main.waitMs * perS },
    others: { runMsPerS: others.runMs * perS, waitMsPerS: others.waitMs * perS, threads: others.threads },
  };
}
