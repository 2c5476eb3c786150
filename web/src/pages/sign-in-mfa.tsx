import { useState } from 'react';
import type { FormEvent } from 'react';
import { useLocation, useNavigate } from 'react-router';
import { verifyMfaCode } from '../api';
import { ErrorSummary } from '../components/error-summary';
import { NO_ERRORS, fieldErrors, formErrorsFrom } from '../components/form-errors';
import type { FormErrors } from '../components/form-errors';
import { returnPath } from '../components/guards';
import { usePageTitle } from '../components/page-title';
import { TextField } from '../components/text-field';
import { sixDigitCode } from '../format';
import { homePathFor, useSession } from '../session';

const idFor = (field: string) => `mfa-${field}`;

export function SignInMfaPage() {
  usePageTitle('Enter your code');
  const { refresh, signOut } = useSession();
  const navigate = useNavigate();
  const location = useLocation();
  const [useRecoveryCode, setUseRecoveryCode] = useState(false);
  const [code, setCode] = useState('');
  const [errors, setErrors] = useState<FormErrors>(NO_ERRORS);
  const [busy, setBusy] = useState(false);

  function switchMode() {
    setUseRecoveryCode((v) => !v);
    setCode('');
    setErrors(NO_ERRORS);
  }

  async function submit(event: FormEvent) {
    event.preventDefault();
    const value = useRecoveryCode ? code.trim() || null : sixDigitCode(code);
    if (!value) {
      setErrors(
        fieldErrors({
          code: useRecoveryCode
            ? 'Enter one of your recovery codes.'
            : 'Enter the 6-digit code shown in your authenticator app.',
        }),
      );
      return;
    }
    setBusy(true);
    setErrors(NO_ERRORS);
    try {
      await verifyMfaCode(value);
      const session = await refresh();
      navigate(returnPath(location.state) ?? homePathFor(session), { replace: true });
    } catch (error) {
      setCode('');
      setErrors(formErrorsFrom(error, ['code'], { invalid_mfa_code: 'code' }));
      setBusy(false);
    }
  }

  return (
    <div className="narrow">
      <h1>Enter your code</h1>
      <p>
        {useRecoveryCode
          ? 'Enter one of the recovery codes you saved when you set up two-step verification. Each code works once.'
          : 'Open your authenticator app and enter the 6-digit code it shows for Confidant.'}
      </p>
      <ErrorSummary errors={errors} idFor={idFor} />
      <form onSubmit={submit} noValidate>
        {useRecoveryCode ? (
          <TextField
            key="recovery"
            id={idFor('code')}
            label="Recovery code"
            hint="For example abcde-12345"
            autoComplete="off"
            autoCapitalize="none"
            spellCheck={false}
            value={code}
            onChange={(e) => setCode(e.target.value)}
            error={errors.fields.code}
            className="input--code"
          />
        ) : (
          <TextField
            key="totp"
            id={idFor('code')}
            label="Authenticator code"
            hint="6 digits, for example 123456"
            inputMode="numeric"
            autoComplete="one-time-code"
            spellCheck={false}
            value={code}
            onChange={(e) => setCode(e.target.value)}
            error={errors.fields.code}
            className="input--code"
          />
        )}
        <button type="submit" className="button" disabled={busy}>
          Verify
        </button>
      </form>
      <p className="after-form">
        <button type="button" className="link-button" onClick={switchMode}>
          {useRecoveryCode ? 'Use your authenticator app instead' : 'Use a recovery code instead'}
        </button>
      </p>
      <p>
        <button type="button" className="link-button" onClick={() => void signOut()}>
          Cancel and start again
        </button>
      </p>
    </div>
  );
}
