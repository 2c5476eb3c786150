import type { ReactNode } from 'react';
import { Link } from 'react-router';
import { usePageTitle } from '../components/page-title';

interface NotFoundProps {
  title?: string;
  /** What may have happened, in plain words. */
  children?: ReactNode;
  /** Where to go instead. */
  back?: { to: string; label: string };
}

/**
 * Something that is not there. A page that exists but is someone else's gets the same answer
 * (the server says 404 for both), so the words never tell which.
 */
export function NotFoundPage({
  title = 'Page not found',
  children = <p>If you typed the web address, check it is correct. If you followed a link, it may be out of date.</p>,
  back = { to: '/', label: 'Go to your home page' },
}: NotFoundProps) {
  usePageTitle(title);
  return (
    <>
      <h1>{title}</h1>
      {children}
      <p>
        <Link to={back.to}>{back.label}</Link>
      </p>
    </>
  );
}
