import { useState } from 'react';
import type { FormEvent } from 'react';
import { Link } from 'react-router';
import { getProfile, updateProfile } from '../api';
import type { PatientProfile } from '../api-types';
import { ErrorSummary } from '../components/error-summary';
import { NO_ERRORS, fieldErrors, formErrorsFrom } from '../components/form-errors';
import type { FormErrors } from '../components/form-errors';
import { LoadedContent } from '../components/loading';
import { LocalTime } from '../components/local-time';
import { usePageTitle } from '../components/page-title';
import { TextField } from '../components/text-field';
import { formatCalendarDate, formatNhsNumber } from '../format';
import { useSession } from '../session';
import { useApi } from '../use-api';

const idFor = (field: string) => `profile-${field}`;

function EditNames({ profile, onSaved }: { profile: PatientProfile; onSaved: (p: PatientProfile) => void }) {
  const { refresh } = useSession();
  const [givenName, setGivenName] = useState(profile.givenName);
  const [familyName, setFamilyName] = useState(profile.familyName);
  const [errors, setErrors] = useState<FormErrors>(NO_ERRORS);
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setSaved(false);
    const problems = fieldErrors({
      givenName: givenName.trim() ? null : 'Enter your given name.',
      familyName: familyName.trim() ? null : 'Enter your family name.',
    });
    setErrors(problems);
    if (problems.summary) return;
    const changes: { givenName?: string; familyName?: string } = {};
    if (givenName.trim() !== profile.givenName) changes.givenName = givenName.trim();
    if (familyName.trim() !== profile.familyName) changes.familyName = familyName.trim();
    if (Object.keys(changes).length === 0) {
      setSaved(true);
      return;
    }
    setBusy(true);
    try {
      const updated = await updateProfile(changes);
      onSaved(updated);
      setGivenName(updated.givenName);
      setFamilyName(updated.familyName);
      setSaved(true);
      // The name in the top bar comes from the session.
      await refresh().catch(() => undefined);
    } catch (error) {
      setErrors(formErrorsFrom(error, ['givenName', 'familyName']));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="panel" aria-labelledby="edit-names-heading">
      <h2 id="edit-names-heading">Change your name</h2>
      <ErrorSummary errors={errors} idFor={idFor} />
      <form onSubmit={submit} noValidate>
        <TextField
          id={idFor('givenName')}
          label="Given name"
          autoComplete="given-name"
          value={givenName}
          onChange={(e) => setGivenName(e.target.value)}
          error={errors.fields.givenName}
        />
        <TextField
          id={idFor('familyName')}
          label="Family name"
          autoComplete="family-name"
          value={familyName}
          onChange={(e) => setFamilyName(e.target.value)}
          error={errors.fields.familyName}
        />
        <button type="submit" className="button" disabled={busy}>
          Save
        </button>
        <p role="status" className="status-line">
          {saved ? 'Your name has been saved.' : ''}
        </p>
      </form>
    </section>
  );
}

export function PatientProfilePage() {
  usePageTitle('Your profile');
  const { result, reload, setData } = useApi(getProfile);

  return (
    <>
      <h1>Your profile</h1>
      <LoadedContent result={result} what="your profile" onRetry={reload}>
        {(profile) => (
          <>
            <dl className="summary-list">
              <div>
                <dt>Name</dt>
                <dd>
                  {profile.givenName} {profile.familyName}
                </dd>
              </div>
              <div>
                <dt>Date of birth</dt>
                <dd>{formatCalendarDate(profile.dateOfBirth)}</dd>
              </div>
              <div>
                <dt>NHS number</dt>
                <dd>
                  {profile.nhsNumber ? formatNhsNumber(profile.nhsNumber) : <span className="muted">Not given</span>}
                </dd>
              </div>
              <div>
                <dt>Email</dt>
                <dd className="break">{profile.email}</dd>
              </div>
              <div>
                <dt>Registered</dt>
                <dd>
                  <LocalTime iso={profile.createdAt} />
                </dd>
              </div>
            </dl>
            <p className="muted">
              Your date of birth, NHS number and email address cannot be changed here.
            </p>
            <EditNames profile={profile} onSaved={setData} />
          </>
        )}
      </LoadedContent>
      <section className="panel" aria-labelledby="replays-heading">
        <h2 id="replays-heading">Consultation replays</h2>
        <p>Recordings of your consultations, if you agreed to them being recorded, with your GP's notes.</p>
        <p>
          <Link to="/patient/replays">Consultation replays</Link>
        </p>
      </section>
      <p className="after-form">
        <Link to="/account/security">Change your password or security settings</Link>
      </p>
    </>
  );
}
