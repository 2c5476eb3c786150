import { Link, useParams } from 'react-router';
import { listStaff } from '../api';
import { AvailabilityEditor } from '../components/availability-editor';
import { LoadedContent } from '../components/loading';
import { usePageTitle } from '../components/page-title';
import { useApi } from '../use-api';

export function AdminClinicianAvailabilityPage() {
  const { clinicianId = '' } = useParams();
  const { result, reload } = useApi(listStaff);
  const clinician =
    result.status === 'ok' ? result.data.staff.find((m) => m.id === clinicianId && m.role === 'clinician') : undefined;
  usePageTitle(clinician ? `Availability: ${clinician.displayName}` : 'Availability');

  return (
    <>
      <p>
        <Link to="/admin">Back to staff</Link>
      </p>
      <LoadedContent result={result} what="the clinician" onRetry={reload}>
        {() =>
          clinician ? (
            <>
              <h1>Availability: {clinician.displayName}</h1>
              <p>Patients can book the free times in these weekly hours, except during leave or blocked time.</p>
              <AvailabilityEditor key={clinician.id} clinicianId={clinician.id} owner={clinician.displayName} />
            </>
          ) : (
            <>
              <h1>Clinician not found</h1>
              <p>There is no clinician with that ID. Choose one from the staff page.</p>
            </>
          )
        }
      </LoadedContent>
    </>
  );
}
