import { listReplays } from '../api';
import { FeatureOffNotice } from '../components/feature-off';
import { LoadedContent } from '../components/loading';
import { usePageTitle } from '../components/page-title';
import { useFeatureOn } from '../feature-status';
import { useApi } from '../use-api';
import { ReplayTable } from './patient-replays';

export function ClinicianReplaysPage() {
  usePageTitle('Recorded consultations');
  const listOn = useFeatureOn('replay_list');
  return (
    <div className="wide">
      <h1>Recorded consultations</h1>
      <p>Recordings of your own consultations, made with the patient's agreement.</p>
      {listOn ? <RecordingList /> : <FeatureOffNotice feature="replay_list" recheck />}
    </div>
  );
}

function RecordingList() {
  const { result, reload } = useApi(listReplays);
  return (
    <>
      <LoadedContent result={result} what="recordings" onRetry={reload}>
        {({ replays }) =>
          replays.length === 0 ? (
            <p className="empty-state">None of your consultations has been recorded.</p>
          ) : (
            <ReplayTable replays={replays} caption="Recordings of your consultations" who="patient" />
          )
        }
      </LoadedContent>
      <p>
        <button type="button" className="link-button" onClick={reload}>
          Refresh the list
        </button>
      </p>
    </>
  );
}
