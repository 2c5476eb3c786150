import { useCallback, useEffect, useState } from 'react';
import { errorMessage } from './api';

export type Loaded<T> = { status: 'loading' } | { status: 'ok'; data: T } | { status: 'error'; message: string };

/**
 * Runs `load` on mount (and when `deps` change or `reload` is called). While reloading, the last
 * data stays on screen; an answer that arrives after the component moved on is dropped.
 */
export function useApi<T>(load: () => Promise<T>, deps: readonly unknown[] = []) {
  const [result, setResult] = useState<Loaded<T>>({ status: 'loading' });
  const [version, setVersion] = useState(0);

  useEffect(() => {
    let current = true;
    setResult((previous) => (previous.status === 'ok' ? previous : { status: 'loading' }));
    load().then(
      (data) => current && setResult({ status: 'ok', data }),
      (error: unknown) => current && setResult({ status: 'error', message: errorMessage(error) }),
    );
    return () => {
      current = false;
    };
    // `load` is a fresh closure each render; `deps` says when it really changed.
  }, [version, ...deps]);

  const reload = useCallback(() => setVersion((v) => v + 1), []);
  const setData = useCallback((data: T) => setResult({ status: 'ok', data }), []);
  return { result, reload, setData };
}
