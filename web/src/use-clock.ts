import { useEffect, useState } from 'react';

/**
 * Re-renders every `ms` and returns the time: what depends on "now" (a consultation that has
 * started, a time that has passed) changes on screen without a reload.
 */
export function useClock(ms = 30_000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [ms]);
  return now;
}
