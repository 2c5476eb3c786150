import { useState } from 'react';
import type { FormEvent } from 'react';
import { Link, Navigate, useNavigate } from 'react-router';
import { registerPatient } from '../api';
import type { RegisterPatientInput } from '../api-types';
import { DateField, NO_DATE, parseDateParts } from '../components/date-field';
import type { DateParts } from '../components/date-field';
import { ErrorSummary } from '../components/error-summary';
import { NO_ERRORS, fieldErrors, formErrorsFrom } from '../components/form-errors';
import type { FormErrors } from '../components/form-errors';
import { FeatureOffNotice } from '../components/feature-off';
import { Loading } from '../components/loading';
import { usePageTitle } from '../components/page-title';
import { TextField } from '../components/text-field';
import { useFeatureOn } from '../feature-status';
import { homePathFor, useSession } from '../session';

type Fields = Omit<Required<RegisterPatientInput>, 'dateOfBirth'> & { dateOfBirth: DateParts };
const FIELD_NAMES: (keyof Fields)[] = ['givenName', 'familyName', 'dateOfBirth', 'email', 'password', 'nhsNumber'];
const EMPTY: Fields = { givenName: '', familyName: '', dateOfBirth: NO_DATE, email: '', password: '', nhsNumber: '' };
const idFor = (field: string) => `register-${field}`;

function todayIso(): string {
  const now = new Date();
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

function dateOfBirthProblem(parts: DateParts): string | null {
  const parsed = parseDateParts(parts, 'Date of birth');
  if ('error' in parsed) return parsed.error;
  if (parsed.iso > todayIso()) return 'Date of birth must be in the past.';
  if (parsed.iso < '1900-01-01') return 'Date of birth must be after 1900. Check the year.';
  return null;
}

function checkLocally(values: Fields): FormErrors {
  const nhsDigits = values.nhsNumber.replace(/[\s-]/g, '');
  return fieldErrors({
    givenName: values.givenName.trim() ? null : 'Enter your given name.',
    familyName: values.familyName.trim() ? null : 'Enter your family name.',
    dateOfBirth: dateOfBirthProblem(values.dateOfBirth),
    email: !values.email.trim()
      ? 'Enter your email address.'
      : /^[^\s@]+@[^\s@]+$/.test(values.email.trim())
        ? null
        : 'Enter an email address like name@example.com.',
    password: !values.password
      ? 'Choose a password.'
      : values.password.length < 12
        ? 'Use at least 12 characters.'
        : null,
    nhsNumber:
      nhsDigits && !/^\d{10}$/.test(nhsDigits)
        ? 'An NHS number is 10 digits. Leave it blank if you do not know it.'
        : null,
  });
}

export function RegisterPage() {
  usePageTitle('Create an account');
  const { state, refresh } = useSession();
  const navigate = useNavigate();
  const [values, setValues] = useState<Fields>(EMPTY);
  const [errors, setErrors] = useState<FormErrors>(NO_ERRORS);
  const [busy, setBusy] = useState(false);
  const registrationOn = useFeatureOn('registration');

  if (state.status !== 'ready') return <Loading />;
  if (state.session.authenticated && state.session.stage === 'full' && !busy) {
    return <Navigate to={homePathFor(state.session)} replace />;
  }
  if (!registrationOn && !busy) {
    return (
      <div className="narrow">
        <h1>Create an account</h1>
        <FeatureOffNotice feature="registration" recheck />
        <p className="after-form">
          Already registered? <Link to="/sign-in">Sign in</Link>
        </p>
      </div>
    );
  }

  const set = (field: Exclude<keyof Fields, 'dateOfBirth'>) => (event: { target: { value: string } }) =>
    setValues((v) => ({ ...v, [field]: event.target.value }));

  async function submit(event: FormEvent) {
    event.preventDefault();
    const problems = checkLocally(values);
    setErrors(problems);
    const born = parseDateParts(values.dateOfBirth, 'Date of birth');
    if (problems.summary || 'error' in born) return;
    setBusy(true);
    const input: RegisterPatientInput = {
      givenName: values.givenName.trim(),
      familyName: values.familyName.trim(),
      dateOfBirth: born.iso,
      email: values.email.trim(),
      password: values.password,
    };
    if (values.nhsNumber.trim()) input.nhsNumber = values.nhsNumber.trim();
    try {
      await registerPatient(input);
      const session = await refresh();
      navigate(homePathFor(session), { replace: true });
    } catch (error) {
      setErrors(
        formErrorsFrom(error, FIELD_NAMES, {
          email_taken: 'email',
          weak_password: 'password',
          invalid_nhs_number: 'nhsNumber',
        }),
      );
      setBusy(false);
    }
  }

  return (
    <div className="narrow">
      <h1>Create an account</h1>
      <p>Register as a patient to book GP consultations by phone or video.</p>
      <ErrorSummary errors={errors} idFor={idFor} />
      <form onSubmit={submit} noValidate>
        <TextField
          id={idFor('givenName')}
          label="Given name"
          autoComplete="given-name"
          value={values.givenName}
          onChange={set('givenName')}
          error={errors.fields.givenName}
        />
        <TextField
          id={idFor('familyName')}
          label="Family name"
          autoComplete="family-name"
          value={values.familyName}
          onChange={set('familyName')}
          error={errors.fields.familyName}
        />
        <DateField
          id={idFor('dateOfBirth')}
          legend="Date of birth"
          hint="For example, 27 3 1987"
          birthday
          value={values.dateOfBirth}
          onChange={(dateOfBirth) => setValues((v) => ({ ...v, dateOfBirth }))}
          error={errors.fields.dateOfBirth}
        />
        <TextField
          id={idFor('email')}
          label="Email"
          type="email"
          autoComplete="email"
          spellCheck={false}
          value={values.email}
          onChange={set('email')}
          error={errors.fields.email}
        />
        <TextField
          id={idFor('password')}
          label="Password"
          type="password"
          autoComplete="new-password"
          hint="At least 12 characters, and not a common password. A few unrelated words make a strong one."
          value={values.password}
          onChange={set('password')}
          error={errors.fields.password}
        />
        <TextField
          id={idFor('nhsNumber')}
          label="NHS number (optional)"
          hint="10 digits, for example 485 777 3456. You can find it on a prescription or in the NHS App."
          inputMode="numeric"
          autoComplete="off"
          value={values.nhsNumber}
          onChange={set('nhsNumber')}
          error={errors.fields.nhsNumber}
          className="input--nhs"
        />
        <button type="submit" className="button" disabled={busy}>
          Create account
        </button>
      </form>
      <p className="after-form">
        Already registered? <Link to="/sign-in">Sign in</Link>
      </p>
    </div>
  );
}
