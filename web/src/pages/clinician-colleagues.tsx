import { Link } from 'react-router';
import { usePageTitle } from '../components/page-title';
import { StaffList } from '../components/staff-list';
import { useSignedIn } from '../session';

/** The practice's staff, away from the clinic-day page a GP works from. */
export function ClinicianColleaguesPage() {
  usePageTitle('Colleagues');
  const session = useSignedIn();
  return (
    <div className="wide">
      <h1>Colleagues</h1>
      <StaffList caption="Colleagues" selfId={session.account.id} />
      <p>
        <Link to="/clinician">Back to today's consultations</Link>
      </p>
    </div>
  );
}
