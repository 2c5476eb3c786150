import type { Principal } from './principal';

/** What a principal may do, named `resource.action`. Routes declare one; roles grant them. */
export const Permission = {
  ProfileRead: 'profile.read',
  ProfileUpdate: 'profile.update',
  PasswordChange: 'password.change',
  SessionRead: 'session.read',
  SessionRevoke: 'session.revoke',
  MfaEnrol: 'mfa.enrol',
  MfaVerify: 'mfa.verify',
  AuditRead: 'audit.read',
  StaffRead: 'staff.read',
  ClinicianDirectoryRead: 'clinician.read',
  SlotRead: 'slot.read',
  AppointmentBook: 'appointment.book',
  AppointmentRead: 'appointment.read',
  AppointmentCancel: 'appointment.cancel',
  AppointmentReschedule: 'appointment.reschedule',
  AppointmentOutcome: 'appointment.outcome',
  ScheduleRead: 'schedule.read',
  AvailabilityRead: 'availability.read',
  AvailabilityManage: 'availability.manage',
  NotificationRead: 'notification.read',
  ConsultationJoin: 'consultation.join',
  ConsultationRead: 'consultation.read',
  ConsultationSignal: 'consultation.signal',
  ConsultationSwitchMode: 'consultation.switch_mode',
  ConsultationWaitingRoom: 'consultation.waiting_room',
  ConsultationStart: 'consultation.start',
  ConsultationEnd: 'consultation.end',
  NotesRead: 'notes.read',
  NotesWrite: 'notes.write',
  RecordingConsent: 'recording.consent',
  RecordingConsentRequest: 'recording.consent_request',
  RecordingCreate: 'recording.create',
  RecordingUpload: 'recording.upload',
  RecordingRead: 'recording.read',
  RecordingPlay: 'recording.play',
  FeatureRead: 'feature.read',
  FeatureManage: 'feature.manage',
  GuardRead: 'guard.read',
  GuardManage: 'guard.manage',
} as const;
export type Permission = (typeof Permission)[keyof typeof Permission];

const signedIn: Permission[] = [
  Permission.PasswordChange,
  Permission.SessionRead,
  Permission.SessionRevoke,
  Permission.MfaEnrol,
];

/** What both parties of a consultation may do. */
const inConsultation: Permission[] = [
  Permission.ConsultationJoin,
  Permission.ConsultationRead,
  Permission.ConsultationSignal,
  Permission.ConsultationSwitchMode,
  Permission.NotesRead,
  Permission.RecordingRead,
  Permission.RecordingPlay,
];

/** Default deny: a kind or role not listed here may do nothing. */
const grants: Record<string, ReadonlySet<Permission>> = {
  patient: new Set([
    ...signedIn,
    Permission.ProfileRead,
    Permission.ProfileUpdate,
    Permission.ClinicianDirectoryRead,
    Permission.SlotRead,
    Permission.AppointmentBook,
    Permission.AppointmentRead,
    Permission.AppointmentCancel,
    Permission.AppointmentReschedule,
    Permission.NotificationRead,
    ...inConsultation,
    Permission.RecordingConsent,
  ]),
  clinician: new Set([
    ...signedIn,
    Permission.StaffRead,
    Permission.ScheduleRead,
    Permission.AppointmentCancel,
    Permission.AppointmentOutcome,
    Permission.AvailabilityRead,
    Permission.AvailabilityManage,
    Permission.NotificationRead,
    ...inConsultation,
    Permission.ConsultationWaitingRoom,
    Permission.ConsultationStart,
    Permission.ConsultationEnd,
    Permission.NotesWrite,
    Permission.RecordingConsentRequest,
    Permission.RecordingCreate,
    Permission.RecordingUpload,
  ]),
  'staff:dpo': new Set([
    ...signedIn,
    Permission.AuditRead,
    Permission.StaffRead,
    Permission.FeatureRead,
    Permission.FeatureManage,
    Permission.GuardRead,
    Permission.GuardManage,
  ]),
  'staff:admin': new Set([
    ...signedIn,
    Permission.StaffRead,
    Permission.AvailabilityRead,
    Permission.AvailabilityManage,
    Permission.FeatureRead,
    Permission.FeatureManage,
  ]),
  'pending:mfa': new Set([Permission.MfaVerify]),
  'pending:enrol': new Set([Permission.MfaEnrol]),
};

export function grantKey(p: Principal): string {
  if (p.kind === 'staff') return `staff:${p.role}`;
  if (p.kind === 'pending') return `pending:${p.stage}`;
  return p.kind;
}

export function hasPermission(p: Principal, permission: Permission): boolean {
  return grants[grantKey(p)]?.has(permission) ?? false;
}

export function permissionsOf(p: Principal): Permission[] {
  return [...(grants[grantKey(p)] ?? [])];
}
