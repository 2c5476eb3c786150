import { useEffect, useRef } from 'react';
import { Outlet, useLocation } from 'react-router';
import { GuardAlertsProvider } from '../guard-alerts';
import { useSession } from '../session';
import { CriticalAlertBanner } from './critical-alert-banner';
import { isDpo } from './guards';
import { TopBar } from './top-bar';

/**
 * The page frame. After an in-app navigation, focus moves to the new page's heading (or to the
 * element a #fragment names) so that screen-reader and keyboard users start at the top of the new
 * content, as on a full page load. A signed-in DPO gets the breach guard's alerts, live, and a
 * banner on every page while a critical one waits.
 */
export function Layout() {
  const { pathname, hash } = useLocation();
  const { state } = useSession();
  const firstRender = useRef(true);
  const session = state.status === 'ready' && state.session.authenticated && state.session.stage === 'full' ? state.session : null;
  const dpo = session !== null && isDpo(session.account);

  useEffect(() => {
    if (firstRender.current) {
      firstRender.current = false;
      return;
    }
    // Wait a frame: the page may render its heading after a redirect or a quick load.
    const frame = requestAnimationFrame(() => {
      const fragment = hash.length > 1 ? document.getElementById(decodeURIComponent(hash.slice(1))) : null;
      const target = fragment ?? document.querySelector<HTMLElement>('#main h1') ?? document.getElementById('main');
      if (!target) return;
      if (!target.hasAttribute('tabindex')) target.setAttribute('tabindex', '-1');
      target.focus({ preventScroll: false });
    });
    return () => cancelAnimationFrame(frame);
  }, [pathname, hash]);

  return (
    <GuardAlertsProvider enabled={dpo}>
      <a className="skip-link" href="#main">
        Skip to main content
      </a>
      <TopBar />
      <main id="main" className="main" tabIndex={-1}>
        {dpo ? <CriticalAlertBanner /> : null}
        <Outlet />
      </main>
      <footer className="footer">
        <p>Confidant GP online. In an emergency call 999. For urgent advice call 111.</p>
      </footer>
    </GuardAlertsProvider>
  );
}
