import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState } from 'react';
import type { ReactNode } from 'react';
import * as api from './api';

/** How often the app asks again which features are on, besides after a refusal. */
const REFRESH_MS = 30_000;

interface FeatureStatusValue {
  /** Whether `feature` is on. Until the first answer (or for a name the server did not list), it is. */
  isOn(feature: string): boolean;
  /** Asks the server again now; resolves once the answer is in (or the request failed). */
  refresh(): Promise<void>;
}

const FeatureStatusContext = createContext<FeatureStatusValue | null>(null);

/**
 * Which features (kill switches) are on: asked on load, every 30 s, when the tab comes back into
 * view, and at once whenever a request is refused with `feature_disabled`, so the pages grey what is off and say why. The
 * server has the last word on every request; this only keeps people from trying in vain.
 */
export function FeatureStatusProvider({ children }: { children: ReactNode }) {
  const [off, setOff] = useState<ReadonlySet<string>>(() => new Set());
  const inFlight = useRef<Promise<void> | null>(null);

  const refresh = useCallback(() => {
    // One request at a time: a burst of refusals asks once.
    inFlight.current ??= api
      .getFeatureStatus()
      .then(({ features }) => {
        const next = new Set(features.filter((f) => !f.enabled).map((f) => f.name));
        setOff((previous) => (sameSet(previous, next) ? previous : next));
      })
      // Not reachable just now: keep what we knew; the next tick or refusal asks again.
      .catch(() => undefined)
      .finally(() => {
        inFlight.current = null;
      });
    return inFlight.current;
  }, []);

  useEffect(() => {
    void refresh();
    const timer = setInterval(() => void refresh(), REFRESH_MS);
    // Back to a tab left in the background: look again rather than show what may be stale.
    const onVisible = () => document.visibilityState === 'visible' && void refresh();
    document.addEventListener('visibilitychange', onVisible);
    api.setFeatureDisabledHandler((feature) => {
      // Show it at once, then take the server's full answer.
      if (feature) setOff((previous) => (previous.has(feature) ? previous : new Set([...previous, feature])));
      void refresh();
    });
    return () => {
      clearInterval(timer);
      document.removeEventListener('visibilitychange', onVisible);
      api.setFeatureDisabledHandler(null);
    };
  }, [refresh]);

  const value = useMemo<FeatureStatusValue>(() => ({ isOn: (feature) => !off.has(feature), refresh }), [off, refresh]);
  return <FeatureStatusContext.Provider value={value}>{children}</FeatureStatusContext.Provider>;
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  return a.size === b.size && [...a].every((x) => b.has(x));
}

export function useFeatureStatus(): FeatureStatusValue {
  const value = useContext(FeatureStatusContext);
  if (!value) throw new Error('useFeatureStatus must be used inside <FeatureStatusProvider>');
  return value;
}

/** Whether `feature` is on now. */
export function useFeatureOn(feature: string): boolean {
  return useFeatureStatus().isOn(feature);
}
