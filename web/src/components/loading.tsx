import type { ReactNode } from 'react';
import type { Loaded } from '../use-api';

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <p className="loading" role="status">
      {label}
    </p>
  );
}

interface LoadedContentProps<T> {
  result: Loaded<T>;
  /** What is loading, for the status text: "Loading colleagues…". */
  what?: string;
  onRetry?: () => void;
  children: (data: T) => ReactNode;
}

/** Renders data once it has arrived; until then a status line, or the error with a retry. */
export function LoadedContent<T>({ result, what, onRetry, children }: LoadedContentProps<T>) {
  if (result.status === 'loading') return <Loading label={what ? `Loading ${what}…` : 'Loading…'} />;
  if (result.status === 'error') {
    return (
      <div className="notice notice--error" role="alert">
        <p>{result.message}</p>
        {onRetry ? (
          <button type="button" className="button button--secondary" onClick={onRetry}>
            Try again
          </button>
        ) : null}
      </div>
    );
  }
  return <>{children(result.data)}</>;
}
