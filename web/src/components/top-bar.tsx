import { useState } from 'react';
import { Link, NavLink } from 'react-router';
import { errorMessage } from '../api';
import type { Account } from '../api-types';
import { homePathFor, useSession } from '../session';

function navLinksFor(account: Account): { to: string; label: string }[] {
  const security = { to: '/account/security', label: 'Security' };
  if (account.kind === 'patient') {
    return [
      { to: '/patient', label: 'Home' },
      { to: '/patient/book', label: 'Book a consultation' },
      { to: '/patient/appointments', label: 'Appointments' },
      { to: '/patient/replays', label: 'Replays' },
      { to: '/patient/profile', label: 'Profile' },
      security,
    ];
  }
  if (account.kind === 'clinician') {
    return [
      { to: '/clinician', label: 'Consultations' },
      { to: '/clinician/availability', label: 'Availability' },
      { to: '/clinician/replays', label: 'Recordings' },
      security,
    ];
  }
  if (account.role === 'dpo') return [{ to: '/dpo', label: 'Audit trail' }, { to: '/dpo/features', label: 'Features' }, security];
  if (account.role === 'admin') return [{ to: '/admin', label: 'Staff' }, { to: '/admin/features', label: 'Features' }, security];
  return [security];
}

export function TopBar() {
  const { state, signOut } = useSession();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const session = state.status === 'ready' && state.session.authenticated ? state.session : null;

  async function handleSignOut() {
    setBusy(true);
    setError(null);
    try {
      await signOut();
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <header className="top-bar">
      <div className="top-bar__inner">
        <Link className="top-bar__brand" to={session ? homePathFor(session) : '/'}>
          Confidant <span className="top-bar__tagline">GP online</span>
        </Link>
        {session ? (
          <div className="top-bar__account">
            <span className="top-bar__person">
              <span className="visually-hidden">Signed in as </span>
              {session.account.displayName}
            </span>
            <button type="button" className="button button--on-dark" onClick={handleSignOut} disabled={busy}>
              Sign out
            </button>
          </div>
        ) : null}
      </div>
      {session && session.stage === 'full' ? (
        <nav className="top-bar__nav" aria-label="Main">
          <ul>
            {navLinksFor(session.account).map((link) => (
              <li key={link.to}>
                <NavLink to={link.to} end>
                  {link.label}
                </NavLink>
              </li>
            ))}
          </ul>
        </nav>
      ) : null}
      {error ? (
        <p className="top-bar__error" role="alert">
          {error}
        </p>
      ) : null}
    </header>
  );
}
