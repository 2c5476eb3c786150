import type { AnyRoute } from '../define-route';
import {
  addAvailabilityExceptionRoute,
  getAvailability,
  removeAvailabilityExceptionRoute,
  replaceAvailability,
} from './availability-routes';
import { answerModeSwitch } from './answer-mode-switch';
import { bookAppointment } from './book-appointment';
import { connectConsultationSignal } from './connect-consultation-signal';
import { getConsultationNotes, putConsultationNotes } from './consultation-notes-routes';
import { decideRecordingConsent } from './decide-recording-consent';
import { endConsultation } from './end-consultation';
import { finishRecording } from './finish-recording';
import { getConsultation } from './get-consultation';
import { getRecordingUpload } from './get-recording-upload';
import { getReplay } from './get-replay';
import { getWaitingRoom } from './get-waiting-room';
import { joinConsultation } from './join-consultation';
import { listReplays } from './list-replays';
import { playRecording } from './play-recording';
import { requestModeSwitch } from './request-mode-switch';
import { requestRecordingConsent } from './request-recording-consent';
import { startConsultation } from './start-consultation';
import { startRecording } from './start-recording';
import { uploadRecordingChunk } from './upload-recording-chunk';
import { cancelAppointment } from './cancel-appointment';
import { getAppointment } from './get-appointment';
import { getClinicianSchedule } from './get-clinician-schedule';
import { listClinicians } from './list-clinicians';
import { listFreeSlots } from './list-free-slots';
import { listMyAppointments } from './list-my-appointments';
import { listNotifications, markNotificationRead } from './notification-routes';
import { recordAppointmentOutcome } from './record-appointment-outcome';
import { rescheduleAppointment } from './reschedule-appointment';
import { changePassword } from './change-password';
import { confirmMfaEnrolment } from './confirm-mfa-enrolment';
import { getHealth } from './get-health';
import { getLiveness } from './get-liveness';
import { getReadiness } from './get-readiness';
import { getProfile } from './get-profile';
import { getSession } from './get-session';
import { listSessions } from './list-sessions';
import { listStaff } from './list-staff';
import { registerPatient } from './register-patient';
import { revokeSession } from './revoke-session';
import { searchAuditEvents } from './search-audit-events';
import { signIn } from './sign-in';
import { signOut } from './sign-out';
import { startMfaEnrolment } from './start-mfa-enrolment';
import { updateProfile } from './update-profile';
import { verifyAuditTrail } from './verify-audit-trail';
import { verifyMfa } from './verify-mfa';
import { listFeatures } from './list-features';
import { changeFeature } from './change-feature';
import { listFeatureStatus } from './list-feature-status';
import { acknowledgeAlertRoute, getLastDrill, listAlerts, streamAlerts } from './guard-routes';

export const allRoutes: AnyRoute[] = [
  getHealth,
  getLiveness,
  getReadiness,
  getSession,
  registerPatient,
  signIn,
  signOut,
  verifyMfa,
  startMfaEnrolment,
  confirmMfaEnrolment,
  changePassword,
  listSessions,
  revokeSession,
  getProfile,
  updateProfile,
  listStaff,
  searchAuditEvents,
  verifyAuditTrail,
  listClinicians,
  listFreeSlots,
  bookAppointment,
  listMyAppointments,
  getAppointment,
  cancelAppointment,
  rescheduleAppointment,
  recordAppointmentOutcome,
  getClinicianSchedule,
  getAvailability,
  replaceAvailability,
  addAvailabilityExceptionRoute,
  removeAvailabilityExceptionRoute,
  listNotifications,
  markNotificationRead,
  joinConsultation,
  getConsultation,
  connectConsultationSignal,
  getWaitingRoom,
  startConsultation,
  endConsultation,
  requestModeSwitch,
  answerModeSwitch,
  requestRecordingConsent,
  decideRecordingConsent,
  getConsultationNotes,
  putConsultationNotes,
  startRecording,
  uploadRecordingChunk,
  getRecordingUpload,
  finishRecording,
  listReplays,
  getReplay,
  playRecording,
  listFeatureStatus,
  listFeatures,
  changeFeature,
  listAlerts,
  streamAlerts,
  acknowledgeAlertRoute,
  getLastDrill,
];
