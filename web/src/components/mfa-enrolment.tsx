import { useEffect, useRef, useState } from 'react';
import type { FormEvent } from 'react';
import { confirmMfaEnrolment, errorMessage, startMfaEnrolment } from '../api';
import type { MfaEnrolment as Enrolment } from '../api-types';
import { sixDigitCode } from '../format';
import { ErrorSummary } from './error-summary';
import { NO_ERRORS, fieldErrors, formErrorsFrom } from './form-errors';
import type { FormErrors } from './form-errors';
import { Loading } from './loading';
import { RecoveryCodes } from './recovery-codes';
import { TextField } from './text-field';

type Step =
  | { name: 'starting' }
  | { name: 'start-failed'; message: string }
  | { name: 'scan'; enrolment: Enrolment }
  | { name: 'codes'; recoveryCodes: string[] };

const idFor = (field: string) => `enrol-${field}`;

/**
 * Sets up an authenticator app: asks the server for a secret, shows it as a QR code and as text,
 * confirms with a first code, then shows the recovery codes once. `onDone` runs after the person
 * says they have saved the codes (the session has been rotated by then).
 */
export function MfaEnrolment({ onDone }: { onDone: () => void }) {
  const [step, setStep] = useState<Step>({ name: 'starting' });
  const [code, setCode] = useState('');
  const [errors, setErrors] = useState<FormErrors>(NO_ERRORS);
  const [busy, setBusy] = useState(false);
  // One secret per visit: StrictMode runs effects twice in development.
  const started = useRef(false);

  function start() {
    setStep({ name: 'starting' });
    startMfaEnrolment().then(
      (enrolment) => setStep({ name: 'scan', enrolment }),
      (error: unknown) => setStep({ name: 'start-failed', message: errorMessage(error) }),
    );
  }

  useEffect(() => {
    if (started.current) return;
    started.current = true;
    start();
  }, []);

  async function confirm(event: FormEvent) {
    event.preventDefault();
    const normalised = sixDigitCode(code);
    if (!normalised) {
      setErrors(fieldErrors({ code: 'Enter the 6-digit code shown in your authenticator app.' }));
      return;
    }
    setBusy(true);
    setErrors(NO_ERRORS);
    try {
      const { recoveryCodes } = await confirmMfaEnrolment(normalised);
      setStep({ name: 'codes', recoveryCodes });
    } catch (error) {
      setErrors(formErrorsFrom(error, ['code'], { invalid_mfa_code: 'code' }));
    } finally {
      setBusy(false);
    }
  }

  if (step.name === 'starting') return <Loading label="Preparing your set-up code…" />;

  if (step.name === 'start-failed') {
    return (
      <div className="notice notice--error" role="alert">
        <p>{step.message}</p>
        <button type="button" className="button button--secondary" onClick={start}>
          Try again
        </button>
      </div>
    );
  }

  if (step.name === 'codes') return <RecoveryCodes codes={step.recoveryCodes} onSaved={onDone} />;

  const { enrolment } = step;
  return (
    <div className="enrolment">
      <ol className="steps">
        <li>
          <p>Open an authenticator app on your phone, such as Microsoft Authenticator or Google Authenticator.</p>
        </li>
        <li>
          <p>Scan this QR code with the app.</p>
          <img
            className="qr-code"
            src={'data:image/svg+xml;utf8,' + encodeURIComponent(enrolment.qrSvg)}
            alt="QR code for your authenticator app"
            width={200}
            height={200}
          />
          <p>If you cannot scan it, enter this key in the app instead:</p>
          <p>
            <code className="secret" data-testid="mfa-secret">
              {enrolment.secret}
            </code>
          </p>
        </li>
        <li>
          <p>Enter the 6-digit code the app shows for Confidant.</p>
          <ErrorSummary errors={errors} idFor={idFor} />
          <form onSubmit={confirm} noValidate>
            <TextField
              id={idFor('code')}
              label="Authenticator code"
              hint="6 digits, for example 123456"
              error={errors.fields.code}
              value={code}
              onChange={(e) => setCode(e.target.value)}
              inputMode="numeric"
              autoComplete="one-time-code"
              spellCheck={false}
              className="input--code"
            />
            <button type="submit" className="button" disabled={busy}>
              Verify
            </button>
          </form>
        </li>
      </ol>
    </div>
  );
}
