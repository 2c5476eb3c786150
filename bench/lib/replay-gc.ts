/**
 * Garbage-collection counters of a child server (bench:replay): how many scavenges and
 * mark-compacts ran and the main-thread pause they cost. Installed in the child at start;
 * the counters are cumulative, the bench takes differences.
 */
import { constants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';

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

/** Event-loop delay of a child server, ms: how long a callback that was due waited for the loop. */
export interface LoopDelay {
  p50: number;
  p99: number;
  max: number;
}

/**
 * The child's event-loop delay since the last reset (a 10 ms timer's lateness, as
 * perf_hooks.monitorEventLoopDelay measures it). A seek waits for the loop at every step (accept,
 * the request's head, each database round trip, the first segment), so a loop held up for 100 ms
 * shows in the seeks' tail whatever the route itself costs.
 */
export function loopDelay(): { reset: () => void; read: () => LoopDelay } {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  return {
    reset: () => h.reset(),
    read: () => ({ p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6 }),
  };
}
