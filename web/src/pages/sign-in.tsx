import { useState } from 'react';
import type { FormEvent } from 'react';
import { Link, Navigate, useLocation, useNavigate } from 'react-router';
import { signIn } from '../api';
import { ErrorSummary } from '../components/error-summary';
import { NO_ERRORS, fieldErrors, formErrorsFrom } from '../components/form-errors';
import type { FormErrors } from '../components/form-errors';
import { returnPath } from '../components/guards';
import { FeatureOffNotice } from '../components/feature-off';
import { Loading } from '../components/loading';
import { usePageTitle } from '../components/page-title';
import { TextField } from '../components/text-field';
import { useFeatureOn } from '../feature-status';
import { homePathFor, useSession } from '../session';

const idFor = (field: string) => `sign-in-${field}`;

export function SignInPage() {
  usePageTitle('Sign in');
  const { state, refresh, notice, clearNotice } = useSession();
  const navigate = useNavigate();
  const location = useLocation();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [errors, setErrors] = useState<FormErrors>(NO_ERRORS);
  const [busy, setBusy] = useState(false);
  const registrationOn = useFeatureOn('registration');

  if (state.status !== 'ready') return <Loading />;
  // Someone who has finished signing in has nothing to do here; half-way is fine (start again).
  if (state.session.authenticated && state.session.stage === 'full' && !busy) {
    return <Navigate to={returnPath(location.state) ?? homePathFor(state.session)} replace />;
  }

  async function submit(event: FormEvent) {
    event.preventDefault();
    const problems = fieldErrors({
      email: email.trim() ? null : 'Enter your email address.',
      password: password ? null : 'Enter your password.',
    });
    setErrors(problems);
    if (problems.summary) return;
    setBusy(true);
    try {
      await signIn(email.trim(), password);
      const session = await refresh();
      clearNotice();
      const from = returnPath(location.state);
      const next = session.authenticated && session.stage === 'full' && from ? from : homePathFor(session);
      navigate(next, { replace: true, state: from ? { from } : null });
    } catch (error) {
      setPassword('');
      setErrors(formErrorsFrom(error, ['email', 'password']));
      setBusy(false);
    }
  }

  return (
    <div className="narrow">
      <h1>Sign in</h1>
      {notice && !errors.summary ? (
        <div className="notice notice--info" role="status">
          <p>{notice}</p>
        </div>
      ) : null}
      <ErrorSummary errors={errors} idFor={idFor} />
      <form onSubmit={submit} noValidate>
        <TextField
          id={idFor('email')}
          label="Email"
          type="email"
          autoComplete="username"
          spellCheck={false}
          value={email}
          onChange={(e) => setEmail(e.target.value)}
          error={errors.fields.email}
        />
        <TextField
          id={idFor('password')}
          label="Password"
          type="password"
          autoComplete="current-password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          error={errors.fields.password}
        />
        <button type="submit" className="button" disabled={busy}>
          Sign in
        </button>
      </form>
      {registrationOn ? (
        <p className="after-form">
          <Link to="/register">New patient? Create an account</Link>
        </p>
      ) : (
        <div className="after-form">
          <FeatureOffNotice feature="registration" compact />
        </div>
      )}
    </div>
  );
}
