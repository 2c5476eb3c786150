import { Link } from 'react-router';
import { usePageTitle } from '../components/page-title';
import { StaffList } from '../components/staff-list';
import { useSignedIn } from '../session';

export function ClinicianHomePage() {
  usePageTitle("Today's consultations");
  const session = useSignedIn();
  return (
    <>
      <h1>Today's consultations</h1>
      <p className="empty-state card">No consultations booked for today.</p>
      <section aria-labelledby="colleagues-heading">
        <h2 id="colleagues-heading">Colleagues</h2>
        <StaffList caption="Colleagues" selfId={session.account.id} />
      </section>
      <p>
        <Link to="/account/security">Account security</Link>
      </p>
    </>
  );
}
