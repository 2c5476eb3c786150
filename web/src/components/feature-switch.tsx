import { useState } from 'react';
import { ApiError, changeFeature } from '../api';
import type { Feature } from '../api-types';
import { useFeatureStatus } from '../feature-status';
import { featureLabel } from '../features';
import { ConfirmDialog } from './confirm-dialog';
import { ErrorSummary } from './error-summary';
import { NO_ERRORS, fieldErrors, formErrorsFrom } from './form-errors';
import type { FormErrors } from './form-errors';
import { TextareaField } from './text-field';

export const FEATURE_REASON_MAX = 500;
const idFor = (field: string) => `feature-switch-${field}`;

export const DPO_REQUIRED_MESSAGE =
  'Only the data-protection officer can switch this back on: it was switched off automatically because something looked wrong. Ask them to review the alert first.';

/** After an automatic switch-off only the DPO may switch a feature back on (the server checks too). */
export const canSwitchOn = (feature: Feature, dpo: boolean) => feature.disabledByKind !== 'automatic' || dpo;

/**
 * Asks for a reason, then switches `feature` the other way. Give it a new `key` for each opening
 * (and keep it mounted while it closes, so focus goes back where it was); `onChanged` gets the
 * server's new state of the feature.
 */
export function FeatureSwitchDialog({
  feature,
  open,
  onChanged,
  onClose,
}: {
  feature: Feature | null;
  open: boolean;
  onChanged: (changed: Feature) => void;
  onClose: () => void;
}) {
  const { refresh } = useFeatureStatus();
  const [reason, setReason] = useState('');
  const [errors, setErrors] = useState<FormErrors>(NO_ERRORS);
  const [busy, setBusy] = useState(false);
  const turningOn = feature ? !feature.enabled : false;
  const label = feature ? featureLabel(feature.name) : '';

  async function confirm() {
    if (!feature) return;
    const trimmed = reason.trim();
    const problems = fieldErrors({
      reason:
        trimmed.length < 3
          ? `Say why you are switching ${label} ${turningOn ? 'back on' : 'off'} (at least 3 characters).`
          : trimmed.length > FEATURE_REASON_MAX
            ? `Keep the reason to ${FEATURE_REASON_MAX} characters or fewer.`
            : null,
    });
    setErrors(problems);
    if (problems.summary) return;
    setBusy(true);
    try {
      const changed = await changeFeature(feature.name, turningOn, trimmed);
      void refresh();
      onChanged(changed);
    } catch (error) {
      if (error instanceof ApiError && error.code === 'dpo_required') setErrors({ summary: DPO_REQUIRED_MESSAGE, fields: {} });
      else setErrors(formErrorsFrom(error, ['reason']));
    } finally {
      setBusy(false);
    }
  }

  return (
    <ConfirmDialog
      open={open && feature !== null}
      title={turningOn ? `Switch ${label} back on?` : `Switch ${label} off?`}
      confirmLabel={turningOn ? 'Switch on' : 'Switch off'}
      cancelLabel={turningOn ? 'No, leave it off' : 'No, leave it on'}
      busy={busy}
      onConfirm={() => void confirm()}
      onClose={onClose}
    >
      {feature ? (
        <>
          <ErrorSummary errors={errors} idFor={idFor} />
          <p>{feature.description}.</p>
          <p>
            {turningOn
              ? feature.disabledByKind === 'automatic'
                ? 'It was switched off automatically. Switch it back on only once you know why and the cause is dealt with.'
                : 'Patients and staff can use it again within a second.'
              : 'Within a second nobody can use it: people are told it is switched off for the moment, and open calls or replays that use it stop.'}
          </p>
          <TextareaField
            id={idFor('reason')}
            label="Reason"
            hint="Kept with the change and in the audit trail, with your name."
            rows={3}
            maxChars={FEATURE_REASON_MAX}
            value={reason}
            onChange={(e) => setReason(e.target.value)}
            error={errors.fields.reason}
          />
        </>
      ) : null}
    </ConfirmDialog>
  );
}

/** A switch dialog and a way to open it for a feature; `onChanged` hears of each change made. */
export function useFeatureSwitch(onChanged: (changed: Feature) => void) {
  const [state, setState] = useState<{ feature: Feature | null; open: boolean; opening: number }>({
    feature: null,
    open: false,
    opening: 0,
  });
  const close = () => setState((s) => ({ ...s, open: false }));
  const dialog = (
    <FeatureSwitchDialog
      key={state.opening}
      feature={state.feature}
      open={state.open}
      onChanged={(changed) => {
        close();
        onChanged(changed);
      }}
      onClose={close}
    />
  );
  return { ask: (feature: Feature) => setState((s) => ({ feature, open: true, opening: s.opening + 1 })), dialog };
}
