import type { ReactNode } from 'react';
import { Navigate, useLocation } from 'react-router';
import type { Account, SessionStage } from '../api-types';
import { homePathFor, useSession } from '../session';
import { Loading } from './loading';

interface RequireAccountProps {
  /** Who may see the page; anyone else signed in is sent to their own home page. */
  allow?: (account: Account) => boolean;
  children: ReactNode;
}

/** Renders children only for a fully signed-in account that `allow` accepts. */
export function RequireAccount({ allow, children }: RequireAccountProps) {
  const { state } = useSession();
  const location = useLocation();
  if (state.status !== 'ready') return <Loading />;
  const { session } = state;
  if (!session.authenticated) return <Navigate to="/sign-in" replace state={{ from: location.pathname }} />;
  if (session.stage !== 'full') return <Navigate to={homePathFor(session)} replace state={location.state} />;
  if (allow && !allow(session.account)) return <Navigate to={homePathFor(session)} replace />;
  return <>{children}</>;
}

/** Renders children only while sign-in is at `stage` (the MFA and enrolment steps). */
export function RequireStage({ stage, children }: { stage: SessionStage; children: ReactNode }) {
  const { state } = useSession();
  const location = useLocation();
  if (state.status !== 'ready') return <Loading />;
  const { session } = state;
  if (!session.authenticated || session.stage !== stage) {
    return <Navigate to={homePathFor(session)} replace state={location.state} />;
  }
  return <>{children}</>;
}

/** The path a signed-out visitor was heading for, if it is one of ours. */
export function returnPath(state: unknown): string | null {
  if (typeof state !== 'object' || state === null || !('from' in state)) return null;
  const from = state.from;
  if (typeof from !== 'string' || !from.startsWith('/') || from.startsWith('//')) return null;
  if (from === '/' || from.startsWith('/sign-in') || from === '/register') return null;
  return from;
}

export const isPatient = (account: Account) => account.kind === 'patient';
export const isClinician = (account: Account) => account.kind === 'clinician';
export const isDpo = (account: Account) => account.kind === 'staff' && account.role === 'dpo';
export const isAdmin = (account: Account) => account.kind === 'staff' && account.role === 'admin';

