import { listReplays } from '../api';
import { LoadedContent } from '../components/loading';
import { usePageTitle } from '../components/page-title';
import { useApi } from '../use-api';
import { ReplayTable } from './patient-replays';

export function ClinicianReplaysPage() {
  usePageTitle('Recorded consultations');
  const { result, reload } = useApi(listReplays);
  return (
    <div className="wide">
      <h1>Recorded consultations</h1>
      <p>Recordings of your own consultations, made with the patient's agreement.</p>
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
    </div>
  );
}
