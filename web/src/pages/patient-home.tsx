import { Link } from 'react-router';
import { getProfile } from '../api';
import { LoadedContent } from '../components/loading';
import { usePageTitle } from '../components/page-title';
import { useApi } from '../use-api';

export function PatientHomePage() {
  usePageTitle('Home');
  const { result, reload } = useApi(getProfile);

  return (
    <LoadedContent result={result} what="your details" onRetry={reload}>
      {(profile) => (
        <>
          <h1>Hello, {profile.givenName}</h1>
          <div className="cards">
            <section className="card" aria-labelledby="appointments-heading">
              <h2 id="appointments-heading">Appointments</h2>
              <p className="empty-state">You have no upcoming appointments.</p>
            </section>
            <section className="card" aria-labelledby="replays-heading">
              <h2 id="replays-heading">Consultation replays</h2>
              <p className="empty-state">Recordings of your consultations will appear here.</p>
            </section>
            <section className="card" aria-labelledby="account-heading">
              <h2 id="account-heading">Your account</h2>
              <ul className="link-list">
                <li>
                  <Link to="/patient/profile">Your profile</Link>
                  <span className="muted"> – your name, date of birth and NHS number</span>
                </li>
                <li>
                  <Link to="/account/security">Account security</Link>
                  <span className="muted"> – password, two-step verification and signed-in devices</span>
                </li>
              </ul>
            </section>
          </div>
        </>
      )}
    </LoadedContent>
  );
}
