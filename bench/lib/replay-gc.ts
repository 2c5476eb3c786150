/**
 * Garbage-collection counters of a child server (bench:replay): how many scavenges and
 * mark-compacts ran and the main-thread pause they cost. Installed in the child at start;
 * the counters are cumulative, the bench takes differences.
 */
import { constants, PerformanceObserver } from 'node:perf_hooks';

export interface GcCounters {
  major: number;
  minor: number;
  other: number;
  majorMs: number;
  minorMs: number;
  otherMs: number;
}

export function gcCounters(): () => GcCounters {
  const c: GcCounters = { major: 0, minor: 0, other: 0, majorMs: 0, minorMs: 0, otherMs: 0 };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        c.major++;
        c.majorMs += e.duration;
      } else if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
        c.minor++;
        c.minorMs += e.duration;
      } else {
        c.other++;
        c.otherMs += e.duration;
      }
    }
  }).observe({ entryTypes: ['gc'] });
  return () => ({ ...c });
}

export function gcDelta(a: GcCounters, b: GcCounters): GcCounters {
  return { major: b.major - a.major, minor: b.minor - a.minor, other: b.other - a.other, majorMs: b.majorMs - a.majorMs, minorMs: b.minorMs - a.minorMs, otherMs: b.otherMs - a.otherMs };
}
