import { AvailabilityEditor } from '../components/availability-editor';
import { usePageTitle } from '../components/page-title';
import { useSignedIn } from '../session';

export function ClinicianAvailabilityPage() {
  usePageTitle('Your availability');
  const session = useSignedIn();
  return (
    <>
      <h1>Your availability</h1>
      <p>Patients can book the free times in your weekly hours, except during leave or blocked time.</p>
      <AvailabilityEditor key={session.account.id} clinicianId={session.account.id} owner="self" />
    </>
  );
}
