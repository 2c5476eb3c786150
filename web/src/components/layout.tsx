import { useEffect, useRef } from 'react';
import { Outlet, useLocation } from 'react-router';
import { TopBar } from './top-bar';

/**
 * The page frame. After an in-app navigation, focus moves to the new page's heading so that
 * screen-reader and keyboard users start at the top of the new content, as on a full page load.
 */
export function Layout() {
  const { pathname } = useLocation();
  const firstRender = useRef(true);

  useEffect(() => {
    if (firstRender.current) {
      firstRender.current = false;
      return;
    }
    // Wait a frame: the page may render its heading after a redirect or a quick load.
    const frame = requestAnimationFrame(() => {
      const target = document.querySelector<HTMLElement>('#main h1') ?? document.getElementById('main');
      if (!target) return;
      if (!target.hasAttribute('tabindex')) target.setAttribute('tabindex', '-1');
      target.focus({ preventScroll: false });
    });
    return () => cancelAnimationFrame(frame);
  }, [pathname]);

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to main content
      </a>
      <TopBar />
      <main id="main" className="main" tabIndex={-1}>
        <Outlet />
      </main>
      <footer className="footer">
        <p>Confidant GP online. In an emergency call 999. For urgent advice call 111.</p>
      </footer>
    </>
  );
}
