import { Link } from 'react-router';
import { listStaff } from '../api';
import { LoadedContent } from '../components/loading';
import { usePageTitle } from '../components/page-title';
import { StaffList } from '../components/staff-list';
import { useSignedIn } from '../session';
import { useApi } from '../use-api';

function ClinicianAvailabilityLinks() {
  const { result, reload } = useApi(listStaff);
  return (
    <section aria-labelledby="availability-heading">
      <h2 id="availability-heading">Clinicians' availability</h2>
      <p>Set a clinician's weekly hours, leave and blocked time.</p>
      <LoadedContent result={result} what="clinicians" onRetry={reload}>
        {({ staff }) => {
          const clinicians = staff.filter((m) => m.role === 'clinician');
          return clinicians.length === 0 ? (
            <p className="empty-state">No clinicians yet.</p>
          ) : (
            <ul className="link-list card">
              {clinicians.map((c) => (
                <li key={c.id}>
                  <Link to={`/admin/clinicians/${encodeURIComponent(c.id)}/availability`}>
                    {c.displayName}: weekly hours and leave
                  </Link>
                </li>
              ))}
            </ul>
          );
        }}
      </LoadedContent>
    </section>
  );
}

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
      <ClinicianAvailabilityLinks />
      <section aria-labelledby="features-heading">
        <h2 id="features-heading">Features</h2>
        <p>Switch a part of the service off at once if something goes wrong, and back on when it is safe.</p>
        <ul className="link-list card">
          <li>
            <Link to="/admin/features">Features and their switches</Link>
          </li>
        </ul>
      </section>
    </>
  );
}
