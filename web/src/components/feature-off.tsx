import { useState } from 'react';
import { useFeatureStatus } from '../feature-status';
import { featureOffMessage } from '../features';
import { formatTimeOfDay } from '../format';

/**
 * Where a switched-off feature would be: why it is not there, in plain words. Give it an `id`
 * when a greyed control next to it should point to it (aria-describedby); `recheck` offers to ask
 * again at once rather than wait for the app's next look (every 30 s).
 */
export function FeatureOffNotice({ feature, id, compact, recheck }: { feature: string; id?: string; compact?: boolean; recheck?: boolean }) {
  const { refresh } = useFeatureStatus();
  const [busy, setBusy] = useState(false);
  const [checkedAt, setCheckedAt] = useState<string | null>(null);

  async function checkAgain() {
    setBusy(true);
    await refresh();
    // Still here (the notice goes when the feature is back on): say that we did look.
    setCheckedAt(new Date().toISOString());
    setBusy(false);
  }

  return (
    <div className={compact ? 'notice notice--warning notice--compact' : 'notice notice--warning'} id={id} role="status" data-feature-off={feature}>
      <p>{featureOffMessage(feature)}</p>
      {checkedAt ? <p className="muted">Still switched off at {formatTimeOfDay(checkedAt)}.</p> : null}
      {recheck ? (
        <button type="button" className="button button--secondary button--small" disabled={busy} onClick={() => void checkAgain()}>
          Check again
        </button>
      ) : null}
    </div>
  );
}
