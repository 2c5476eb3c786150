import { useState } from 'react';
import { listFeatures } from '../api';
import type { Feature } from '../api-types';
import { DPO_REQUIRED_MESSAGE, canSwitchOn, useFeatureSwitch } from '../components/feature-switch';
import { isDpo } from '../components/guards';
import { LoadedContent } from '../components/loading';
import { LocalTime } from '../components/local-time';
import { usePageTitle } from '../components/page-title';
import { featureTitle } from '../features';
import { describeChanger } from '../format';
import { useSignedIn } from '../session';
import { useApi } from '../use-api';

/** On or off, and whether a person or a detection rule switched it off. */
export function FeatureState({ feature }: { feature: Feature }) {
  if (feature.enabled) return <span className="tag tag--green">On</span>;
  return (
    <>
      <span className="tag tag--red">Off</span>
      {feature.disabledByKind === 'automatic' ? (
        <>
          {' '}
          <span className="tag tag--amber">Switched off automatically</span>
        </>
      ) : null}
    </>
  );
}

function FeatureRow({ feature, dpo, selfId, onSwitch }: { feature: Feature; dpo: boolean; selfId: string; onSwitch: (f: Feature) => void }) {
  const title = featureTitle(feature.name);
  const allowed = feature.enabled || canSwitchOn(feature, dpo);
  return (
    <tr data-feature={feature.name}>
      <th scope="row">
        {title}
        <br />
        <span className="muted feature__description">{feature.description}</span>
      </th>
      <td data-label="State">
        <FeatureState feature={feature} />
      </td>
      <td data-label="Last change">
        <LocalTime iso={feature.changedAt} />
        <br />
        <span className="muted">by {describeChanger(feature.changedBy, selfId)}</span>
      </td>
      <td className="break" data-label="Reason">
        {feature.reason}
      </td>
      <td>
        {allowed ? (
          <button
            type="button"
            className={feature.enabled ? 'button button--secondary button--danger button--small' : 'button button--small'}
            aria-label={`${feature.enabled ? 'Switch off' : 'Switch on'}: ${title}`}
            onClick={() => onSwitch(feature)}
          >
            {feature.enabled ? 'Switch off' : 'Switch on'}
          </button>
        ) : (
          <p className="muted feature__dpo-only">{DPO_REQUIRED_MESSAGE}</p>
        )}
      </td>
    </tr>
  );
}

/** Every feature as a kill switch: its state, its last change and why, and a switch (DPO and admins). */
export function FeaturesPage() {
  usePageTitle('Features');
  const session = useSignedIn();
  const dpo = isDpo(session.account);
  const { result, reload, setData } = useApi(listFeatures);
  const [message, setMessage] = useState('');
  const switcher = useFeatureSwitch((changed) => {
    if (result.status === 'ok') {
      setData({ features: result.data.features.map((f) => (f.name === changed.name ? changed : f)) });
    }
    setMessage(`${featureTitle(changed.name)} is now ${changed.enabled ? 'on' : 'off'}.`);
    reload();
  });

  return (
    <div className="wide">
      <h1>Features</h1>
      <p>
        Each part of the service can be switched off at once, in every server, if something goes wrong. While a feature is
        off, patients and staff are told so in plain words, and nothing it would show or change is reached.
      </p>
      <p>
        A detection rule switches a feature off by itself when it sees patient data at risk. After that, only the
        data-protection officer can switch it back on.
      </p>
      <p role="status" className="status-line">
        {message}
      </p>
      <LoadedContent result={result} what="features" onRetry={reload}>
        {({ features }) => (
          <div className="table-scroll" role="region" aria-label="Features" tabIndex={0}>
            <table className="table table--cards features">
              <caption className="visually-hidden">Features and their switches</caption>
              <thead>
                <tr>
                  <th scope="col">Feature</th>
                  <th scope="col">State</th>
                  <th scope="col">Last change</th>
                  <th scope="col">Reason</th>
                  <th scope="col">
                    <span className="visually-hidden">Action</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {features.map((f) => (
                  <FeatureRow key={f.name} feature={f} dpo={dpo} selfId={session.account.id} onSwitch={switcher.ask} />
                ))}
              </tbody>
            </table>
          </div>
        )}
      </LoadedContent>
      {switcher.dialog}
    </div>
  );
}
