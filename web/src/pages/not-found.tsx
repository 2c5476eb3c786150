import { Link } from 'react-router';
import { usePageTitle } from '../components/page-title';

export function NotFoundPage() {
  usePageTitle('Page not found');
  return (
    <>
      <h1>Page not found</h1>
      <p>If you typed the web address, check it is correct. If you followed a link, it may be out of date.</p>
      <p>
        <Link to="/">Go to your home page</Link>
      </p>
    </>
  );
}
