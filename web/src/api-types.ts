// The API's shapes, inferred from the zod contracts the server checks them with, so the two cannot
// drift. Type imports only: they are erased, and neither zod nor server code reaches the bundle
// (test/spine/web-types.test.ts keeps it so). Answers are the schemas' output; request bodies are
// their input (what the server accepts before defaults and trimming).
import type { z } from 'zod';
import type * as appointments from '../../src/contracts/appointments';
import type * as auth from '../../src/contracts/auth';
import type * as common from '../../src/contracts/common';
import type * as consultations from '../../src/contracts/consultations';
import type * as features from '../../src/contracts/features';
import type * as guard from '../../src/contracts/guard';
import type * as profile from '../../src/contracts/profile';
import type * as staff from '../../src/contracts/staff';

// Sign-in and accounts

export type AccountKind = z.output<typeof auth.AccountKind>;
export type StaffRole = z.output<typeof auth.StaffRole>;
export type SessionStage = z.output<typeof auth.SessionStage>;
export type SessionInfo = z.output<typeof auth.SessionInfo>;
export type SignedInSession = Extract<SessionInfo, { authenticated: true }>;
export type Account = SignedInSession['account'];
export type StageResult = z.output<typeof auth.SignInResult>;
export type RegisterPatientInput = z.input<typeof auth.RegisterPatientInput>;
export type SignInInput = z.input<typeof auth.SignInInput>;
export type MfaCodeInput = z.input<typeof auth.MfaCodeInput>;
export type ChangePasswordInput = z.input<typeof auth.ChangePasswordInput>;
export type MfaEnrolment = z.output<typeof auth.MfaEnrolment>;
export type MfaEnrolled = z.output<typeof auth.MfaEnrolled>;
export type DeviceSession = z.output<typeof auth.SessionSummary>;
export type DeviceSessionList = z.output<typeof auth.SessionList>;

export type PatientProfile = z.output<typeof profile.PatientProfile>;
export type UpdateProfileInput = z.input<typeof profile.UpdateProfileInput>;

export type StaffMember = z.output<typeof staff.StaffMember>;
export type StaffList = z.output<typeof staff.StaffList>;
export type AuditEvent = z.output<typeof staff.AuditEvent>;
export type AuditOutcome = AuditEvent['outcome'];
export type AuditEventQuery = z.input<typeof staff.AuditEventQuery>;
export type AuditEventPage = z.output<typeof staff.AuditEventPage>;
export type AuditVerification = z.output<typeof staff.AuditVerification>;

export type ApiIssue = NonNullable<z.output<typeof common.ErrorResponse>['error']['issues']>[number];
export type Ok = z.output<typeof common.Ok>;

// Appointments

export type ConsultationMode = z.output<typeof appointments.ConsultationMode>;
export type AppointmentStatus = z.output<typeof appointments.AppointmentStatus>;
export type ClinicianList = z.output<typeof appointments.ClinicianList>;
export type Clinician = ClinicianList['clinicians'][number];
export type SlotList = z.output<typeof appointments.SlotList>;
export type Slot = SlotList['slots'][number];
export type Appointment = z.output<typeof appointments.Appointment>;
export type CancelledBy = NonNullable<Appointment['cancelledBy']>;
export type AppointmentLists = z.output<typeof appointments.AppointmentLists>;
export type BookAppointmentInput = z.input<typeof appointments.BookAppointmentInput>;
export type RescheduleInput = z.input<typeof appointments.RescheduleInput>;
export type OutcomeInput = z.input<typeof appointments.OutcomeInput>;
export type NotificationList = z.output<typeof appointments.NotificationList>;
export type AppNotification = NotificationList['notifications'][number];
export type NotificationKind = AppNotification['kind'];
export type ClinicianSchedule = z.output<typeof appointments.ClinicianSchedule>;
export type ScheduledConsultation = ClinicianSchedule['appointments'][number];
/** One weekly period in the clinic's local time; `end` may be "24:00". */
export type WeeklyRule = z.input<typeof appointments.WeeklyRule>;
export type ReplaceAvailabilityInput = z.input<typeof appointments.ReplaceAvailabilityInput>;
export type Availability = z.output<typeof appointments.Availability>;
export type AvailabilityException = Availability['exceptions'][number];
export type AvailabilityExceptionInput = z.input<typeof appointments.AvailabilityExceptionInput>;
export type ExceptionReason = AvailabilityExceptionInput['reason'];

// Consultations (the call) and their recordings

export type ConsultationStatus = z.output<typeof consultations.ConsultationStatus>;
export type ConsentState = z.output<typeof consultations.ConsentState>;
export type RecordingStatus = z.output<typeof consultations.RecordingStatus>;
export type Party = z.output<typeof consultations.Party>;
export type Consultation = z.output<typeof consultations.Consultation>;
export type Presence = Consultation['presence'];
export type WaitingRoom = z.output<typeof consultations.WaitingRoom>;
export type WaitingRoomEntry = WaitingRoom['consultations'][number];
export type ModeRequestInput = z.input<typeof consultations.ModeRequestInput>;
export type ModeAnswerInput = z.input<typeof consultations.ModeAnswerInput>;
export type ConsentRequestInput = z.input<typeof consultations.ConsentRequestInput>;
export type ConsentInput = z.input<typeof consultations.ConsentInput>;
export type ConsentDecision = ConsentInput['decision'];
export type RecordingUpload = z.output<typeof consultations.RecordingUpload>;
export type Replay = z.output<typeof consultations.Replay>;
export type ReplayList = z.output<typeof consultations.ReplayList>;
export type ConsultationNotes = z.output<typeof consultations.Notes>;
export type NotesInput = z.input<typeof consultations.NotesInput>;

/** What the browser sends over the consultation's WebSocket. */
export type ClientSignal = z.input<typeof consultations.ClientSignal>;
/** What the server sends; `changed` means: fetch the consultation again. */
export type ServerSignal = consultations.ServerSignal;

// Kill switches and the breach guard

/** Which features are on now: what anyone is told (GET /api/features/status). */
export type FeatureStatusList = z.output<typeof features.FeatureStatusList>;
export type FeatureStatus = z.output<typeof features.FeatureStatus>;
/** A kill switch as the DPO and admins see it. */
export type Feature = z.output<typeof features.Feature>;
export type FeatureList = z.output<typeof features.FeatureList>;
export type ChangeFeatureInput = z.input<typeof features.ChangeFeatureInput>;
export type GuardAlert = z.output<typeof guard.Alert>;
export type GuardAlertList = z.output<typeof guard.AlertList>;
export type GuardSeverity = z.output<typeof guard.GuardSeverity>;
export type GuardRule = z.output<typeof guard.GuardRule>;
export type DrillReport = z.output<typeof guard.DrillReport>;
export type DrillCase = z.output<typeof guard.DrillCase>;
export type LastDrill = z.output<typeof guard.LastDrill>;

// The one value the web app takes from the contracts: a module with no imports at all.
export { SignalClose } from '../../src/contracts/signal-close';
