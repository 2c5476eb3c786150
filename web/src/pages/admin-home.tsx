import { usePageTitle } from '../components/page-title';
import { StaffList } from '../components/staff-list';
import { useSignedIn } from '../session';

export function AdminHomePage() {
  usePageTitle('Staff');
  const session = useSignedIn();
  return (
    <>
      <h1>Staff</h1>
      <div className="notice notice--info">
        <p>
          Staff accounts are created by an operator on the server with <code>npx confidant users add</code>. They
          cannot be created from this web app.
        </p>
      </div>
      <StaffList caption="Staff" selfId={session.account.id} />
    </>
  );
}
