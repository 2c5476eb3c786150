import { useState } from 'react';
import type { FormEvent } from 'react';
import { changePassword, errorMessage, listDeviceSessions, signOutDevice } from '../api';
import type { DeviceSession } from '../api-types';
import { ErrorSummary } from '../components/error-summary';
import { NO_ERRORS, fieldErrors, formErrorsFrom } from '../components/form-errors';
import type { FormErrors } from '../components/form-errors';
import { LoadedContent } from '../components/loading';
import { LocalTime } from '../components/local-time';
import { MfaEnrolment } from '../components/mfa-enrolment';
import { usePageTitle } from '../components/page-title';
import { TextField } from '../components/text-field';
import { describeDevice } from '../format';
import { useSession, useSignedIn } from '../session';
import { useApi } from '../use-api';

const idFor = (field: string) => `password-${field}`;

function ChangePassword({ onChanged }: { onChanged: () => void }) {
  const { refresh } = useSession();
  const [currentPassword, setCurrentPassword] = useState('');
  const [newPassword, setNewPassword] = useState('');
  const [errors, setErrors] = useState<FormErrors>(NO_ERRORS);
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setDone(false);
    const problems = fieldErrors({
      currentPassword: currentPassword ? null : 'Enter your current password.',
      newPassword: !newPassword
        ? 'Enter a new password.'
        : newPassword.length < 12
          ? 'Use at least 12 characters.'
          : newPassword === currentPassword
            ? 'Choose a password different from your current one.'
            : null,
    });
    setErrors(problems);
    if (problems.summary) return;
    setBusy(true);
    try {
      await changePassword(currentPassword, newPassword);
      setCurrentPassword('');
      setNewPassword('');
      setDone(true);
      onChanged();
      await refresh().catch(() => undefined);
    } catch (error) {
      setErrors(
        formErrorsFrom(error, ['currentPassword', 'newPassword'], {
          invalid_credentials: 'currentPassword',
          weak_password: 'newPassword',
        }),
      );
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="panel" aria-labelledby="change-password-heading">
      <h2 id="change-password-heading">Change password</h2>
      {done ? (
        <div className="notice notice--success" role="status">
          <p>
            <strong>Your password has been changed.</strong> All your other devices have been signed out; this one is
            still signed in.
          </p>
        </div>
      ) : null}
      <ErrorSummary errors={errors} idFor={idFor} />
      <form onSubmit={submit} noValidate>
        <TextField
          id={idFor('currentPassword')}
          label="Current password"
          type="password"
          autoComplete="current-password"
          value={currentPassword}
          onChange={(e) => setCurrentPassword(e.target.value)}
          error={errors.fields.currentPassword}
        />
        <TextField
          id={idFor('newPassword')}
          label="New password"
          type="password"
          autoComplete="new-password"
          hint="At least 12 characters, and not a common password. Changing it signs out your other devices."
          value={newPassword}
          onChange={(e) => setNewPassword(e.target.value)}
          error={errors.fields.newPassword}
        />
        <button type="submit" className="button" disabled={busy}>
          Change password
        </button>
      </form>
    </section>
  );
}

function TwoStepVerification() {
  const session = useSignedIn();
  const { refresh } = useSession();
  const [settingUp, setSettingUp] = useState(false);
  const [justEnabled, setJustEnabled] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function finish() {
    try {
      await refresh();
      setSettingUp(false);
      setJustEnabled(true);
    } catch (e) {
      setError(errorMessage(e));
    }
  }

  return (
    <section className="panel" aria-labelledby="mfa-heading">
      <h2 id="mfa-heading">Two-step verification</h2>
      {session.account.mfaEnabled ? (
        <>
          <p>
            Status: <span className="tag tag--green">Enabled</span>
          </p>
          <p>
            {justEnabled ? 'Two-step verification is now on. ' : ''}
            When you sign in you will be asked for a code from your authenticator app, or one of your recovery codes.
          </p>
        </>
      ) : settingUp ? (
        <MfaEnrolment onDone={finish} />
      ) : (
        <>
          <p>
            Status: <span className="tag tag--grey">Not set up</span>
          </p>
          <p>
            Protect your account with a code from an authenticator app on your phone as well as your password. Someone
            who learns your password still cannot sign in without your phone.
          </p>
          <button type="button" className="button" onClick={() => setSettingUp(true)}>
            Set up two-step verification
          </button>
        </>
      )}
      {error ? (
        <p className="notice notice--error" role="alert">
          {error}
        </p>
      ) : null}
    </section>
  );
}

function DeviceRow({ device, onSignedOut }: { device: DeviceSession; onSignedOut: (id: string) => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const describedBy = `device-${device.id}`;

  async function signOut() {
    setBusy(true);
    setError(null);
    try {
      await signOutDevice(device.id);
      onSignedOut(device.id);
    } catch (e) {
      setError(errorMessage(e));
      setBusy(false);
    }
  }

  return (
    <li className="device">
      <div id={describedBy}>
        <p className="device__name">
          {describeDevice(device.userAgent)}
          {device.current ? <span className="tag tag--blue">This device</span> : null}
        </p>
        <p className="muted">
          {device.clientIp ? <>IP address {device.clientIp}. </> : null}
          Signed in <LocalTime iso={device.createdAt} />. Last active <LocalTime iso={device.lastSeenAt} />.
        </p>
      </div>
      {device.current ? null : (
        <button
          type="button"
          className="button button--secondary"
          onClick={signOut}
          disabled={busy}
          aria-describedby={describedBy}
        >
          Sign out that device
        </button>
      )}
      {error ? (
        <p className="field__error" role="alert">
          {error}
        </p>
      ) : null}
    </li>
  );
}

function SignedInDevices({ version }: { version: number }) {
  const { result, reload, setData } = useApi(listDeviceSessions, [version]);
  const [message, setMessage] = useState('');

  return (
    <section className="panel" aria-labelledby="devices-heading">
      <h2 id="devices-heading">Signed-in devices</h2>
      <p>If you do not recognise a device, sign it out and change your password.</p>
      <p role="status" className="status-line">
        {message}
      </p>
      <LoadedContent result={result} what="your devices" onRetry={reload}>
        {({ sessions }) => (
          <ul className="device-list">
            {[...sessions]
              .sort((a, b) => Number(b.current) - Number(a.current) || b.lastSeenAt.localeCompare(a.lastSeenAt))
              .map((device) => (
                <DeviceRow
                  key={device.id}
                  device={device}
                  onSignedOut={(id) => {
                    setData({ sessions: sessions.filter((s) => s.id !== id) });
                    setMessage(`${describeDevice(device.userAgent)} has been signed out.`);
                  }}
                />
              ))}
          </ul>
        )}
      </LoadedContent>
    </section>
  );
}

export function AccountSecurityPage() {
  usePageTitle('Account security');
  // Bumped after a password change, which signs out every other device.
  const [devicesVersion, setDevicesVersion] = useState(0);
  return (
    <>
      <h1>Account security</h1>
      <ChangePassword onChanged={() => setDevicesVersion((v) => v + 1)} />
      <TwoStepVerification />
      <SignedInDevices version={devicesVersion} />
    </>
  );
}
