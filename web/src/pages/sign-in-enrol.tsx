import { useState } from 'react';
import { useNavigate } from 'react-router';
import { errorMessage } from '../api';
import { MfaEnrolment } from '../components/mfa-enrolment';
import { usePageTitle } from '../components/page-title';
import { homePathFor, useSession } from '../session';

export function SignInEnrolPage() {
  usePageTitle('Set up two-step verification');
  const { refresh } = useSession();
  const navigate = useNavigate();
  const [error, setError] = useState<string | null>(null);

  async function continueToHome() {
    try {
      const session = await refresh();
      navigate(homePathFor(session), { replace: true });
    } catch (e) {
      setError(errorMessage(e));
    }
  }

  return (
    <div className="narrow">
      <h1>Set up two-step verification</h1>
      <p>
        Staff accounts can see patient information, so they must be protected by more than a password. Before you
        continue, set up an authenticator app on your phone. You will enter a code from it each time you sign in.
      </p>
      <MfaEnrolment onDone={continueToHome} />
      {error ? (
        <p className="notice notice--error" role="alert">
          {error}
        </p>
      ) : null}
    </div>
  );
}
