import { Navigate, Route, Routes } from 'react-router';
import { RequireAccount, RequireStage, isAdmin, isClinician, isDpo, isPatient } from './components/guards';
import { Layout } from './components/layout';
import { Loading } from './components/loading';
import { AccountSecurityPage } from './pages/account-security';
import { AdminClinicianAvailabilityPage } from './pages/admin-clinician-availability';
import { AdminHomePage } from './pages/admin-home';
import { ClinicianAvailabilityPage } from './pages/clinician-availability';
import { ClinicianHomePage } from './pages/clinician-home';
import { ClinicianReplaysPage } from './pages/clinician-replays';
import { ClinicianColleaguesPage } from './pages/clinician-colleagues';
import { ConsultationCallPage } from './pages/consultation-call';
import { DpoHomePage } from './pages/dpo-home';
import { FeaturesPage } from './pages/features';
import { NotFoundPage } from './pages/not-found';
import { PatientAppointmentsPage } from './pages/patient-appointments';
import { PatientBookPage } from './pages/patient-book';
import { PatientHomePage } from './pages/patient-home';
import { PatientProfilePage } from './pages/patient-profile';
import { PatientReplaysPage } from './pages/patient-replays';
import { RegisterPage } from './pages/register';
import { ReplayPlayerPage } from './pages/replay-player';
import { SignInPage } from './pages/sign-in';
import { SignInEnrolPage } from './pages/sign-in-enrol';
import { SignInMfaPage } from './pages/sign-in-mfa';
import type { Account } from './api-types';
import { homePathFor, useSession } from './session';

/** The two sides of a consultation: its patient and its clinician. */
const isParty = (account: Account) => isPatient(account) || isClinician(account);

/** `/` sends everyone to where they belong: sign-in, the next sign-in step, or their home page. */
function HomeRedirect() {
  const { state } = useSession();
  if (state.status !== 'ready') return <Loading />;
  return <Navigate to={homePathFor(state.session)} replace />;
}

export function App() {
  return (
    <Routes>
      <Route element={<Layout />}>
        <Route index element={<HomeRedirect />} />
        <Route path="sign-in" element={<SignInPage />} />
        <Route
          path="sign-in/mfa"
          element={
            <RequireStage stage="mfa">
              <SignInMfaPage />
            </RequireStage>
          }
        />
        <Route
          path="sign-in/enrol"
          element={
            <RequireStage stage="enrol">
              <SignInEnrolPage />
            </RequireStage>
          }
        />
        <Route path="register" element={<RegisterPage />} />
        <Route
          path="patient"
          element={
            <RequireAccount allow={isPatient}>
              <PatientHomePage />
            </RequireAccount>
          }
        />
        <Route
          path="patient/profile"
          element={
            <RequireAccount allow={isPatient}>
              <PatientProfilePage />
            </RequireAccount>
          }
        />
        <Route
          path="patient/book"
          element={
            <RequireAccount allow={isPatient}>
              <PatientBookPage />
            </RequireAccount>
          }
        />
        <Route
          path="patient/appointments"
          element={
            <RequireAccount allow={isPatient}>
              <PatientAppointmentsPage />
            </RequireAccount>
          }
        />
        <Route
          path="patient/replays"
          element={
            <RequireAccount allow={isPatient}>
              <PatientReplaysPage />
            </RequireAccount>
          }
        />
        <Route
          path="consultations/:consultationId"
          element={
            <RequireAccount allow={isParty}>
              <ConsultationCallPage />
            </RequireAccount>
          }
        />
        <Route
          path="replays/:recordingId"
          element={
            <RequireAccount allow={isParty}>
              <ReplayPlayerPage />
            </RequireAccount>
          }
        />
        <Route
          path="clinician/replays"
          element={
            <RequireAccount allow={isClinician}>
              <ClinicianReplaysPage />
            </RequireAccount>
          }
        />
        <Route
          path="clinician"
          element={
            <RequireAccount allow={isClinician}>
              <ClinicianHomePage />
            </RequireAccount>
          }
        />
        <Route
          path="clinician/colleagues"
          element={
            <RequireAccount allow={isClinician}>
              <ClinicianColleaguesPage />
            </RequireAccount>
          }
        />
        <Route
          path="clinician/availability"
          element={
            <RequireAccount allow={isClinician}>
              <ClinicianAvailabilityPage />
            </RequireAccount>
          }
        />
        <Route
          path="dpo"
          element={
            <RequireAccount allow={isDpo}>
              <DpoHomePage />
            </RequireAccount>
          }
        />
        <Route
          path="dpo/features"
          element={
            <RequireAccount allow={isDpo}>
              <FeaturesPage />
            </RequireAccount>
          }
        />
        <Route
          path="admin"
          element={
            <RequireAccount allow={isAdmin}>
              <AdminHomePage />
            </RequireAccount>
          }
        />
        <Route
          path="admin/features"
          element={
            <RequireAccount allow={isAdmin}>
              <FeaturesPage />
            </RequireAccount>
          }
        />
        <Route
          path="admin/clinicians/:clinicianId/availability"
          element={
            <RequireAccount allow={isAdmin}>
              <AdminClinicianAvailabilityPage />
            </RequireAccount>
          }
        />
        <Route
          path="account/security"
          element={
            <RequireAccount>
              <AccountSecurityPage />
            </RequireAccount>
          }
        />
        <Route path="*" element={<NotFoundPage />} />
      </Route>
    </Routes>
  );
}
