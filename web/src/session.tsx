import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState } from 'react';
import type { ReactNode } from 'react';
import { useNavigate } from 'react-router';
import * as api from './api';
import type { SessionInfo, SignedInSession } from './api-types';

export const SESSION_ENDED_NOTICE = 'Your session ended. Please sign in again.';
export const SIGNED_OUT_NOTICE = 'You have signed out. On a shared computer, close the browser window as well.';

export type SessionState =
  | { status: 'loading' }
  | { status: 'failed'; message: string }
  | { status: 'ready'; session: SessionInfo };

interface SessionContextValue {
  state: SessionState;
  /** Shown once on the sign-in page, e.g. after the session timed out. */
  notice: string | null;
  clearNotice(): void;
  /** Fetches GET /api/session, stores it (and its CSRF token) and returns it. */
  refresh(): Promise<SessionInfo>;
  signOut(): Promise<void>;
}

const SessionContext = createContext<SessionContextValue | null>(null);

export function SessionProvider({ children }: { children: ReactNode }) {
  const navigate = useNavigate();
  const [state, setState] = useState<SessionState>({ status: 'loading' });
  const [notice, setNotice] = useState<string | null>(null);
  const stateRef = useRef(state);
  useEffect(() => {
    stateRef.current = state;
  }, [state]);

  const refresh = useCallback(async () => {
    const session = await api.getSession();
    if (session.authenticated) api.setCsrfToken(session.csrfToken);
    setState({ status: 'ready', session });
    return session;
  }, []);

  const load = useCallback(() => {
    setState({ status: 'loading' });
    refresh().catch((error: unknown) => setState({ status: 'failed', message: api.errorMessage(error) }));
  }, [refresh]);

  useEffect(load, [load]);

  useEffect(() => {
    api.setSessionEndedHandler(() => {
      const current = stateRef.current;
      if (current.status !== 'ready' || !current.session.authenticated) return;
      api.setCsrfToken(null);
      setNotice(SESSION_ENDED_NOTICE);
      setState({ status: 'ready', session: { authenticated: false } });
      navigate('/sign-in', { replace: true, state: { from: window.location.pathname } });
    });
    return () => api.setSessionEndedHandler(null);
  }, [navigate]);

  const signOut = useCallback(async () => {
    try {
      await api.signOut();
    } catch (error) {
      // Already signed out on the server is still signed out; anything else is worth telling.
      if (!(error instanceof api.ApiError && error.status === 401)) throw error;
    }
    // Say so: a person on a shared computer wants to know it worked.
    setNotice(SIGNED_OUT_NOTICE);
    setState({ status: 'ready', session: { authenticated: false } });
    navigate('/sign-in', { replace: true });
  }, [navigate]);

  const clearNotice = useCallback(() => setNotice(null), []);

  const value = useMemo(
    () => ({ state, notice, clearNotice, refresh, signOut }),
    [state, notice, clearNotice, refresh, signOut],
  );

  if (state.status === 'failed') {
    return (
      <div className="page-column">
        <main id="main" className="main" tabIndex={-1}>
          <h1>Confidant is not available</h1>
          <p role="alert">{state.message}</p>
          <button type="button" className="button" onClick={load}>
            Try again
          </button>
        </main>
      </div>
    );
  }

  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): SessionContextValue {
  const value = useContext(SessionContext);
  if (!value) throw new Error('useSession must be used inside <SessionProvider>');
  return value;
}

/** The signed-in session, for pages that are only rendered behind <RequireAccount>. */
export function useSignedIn(): SignedInSession {
  const { state } = useSession();
  if (state.status !== 'ready' || !state.session.authenticated) {
    throw new Error('useSignedIn used outside a signed-in page');
  }
  return state.session;
}

/** Where a session belongs: the next sign-in step, or the home page of its role. */
export function homePathFor(session: SessionInfo): string {
  if (!session.authenticated) return '/sign-in';
  if (session.stage === 'mfa') return '/sign-in/mfa';
  if (session.stage === 'enrol') return '/sign-in/enrol';
  const { kind, role } = session.account;
  if (kind === 'patient') return '/patient';
  if (kind === 'clinician') return '/clinician';
  if (role === 'dpo') return '/dpo';
  if (role === 'admin') return '/admin';
  return '/account/security';
}
