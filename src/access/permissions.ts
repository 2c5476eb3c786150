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
} as const;
export type Permission = (typeof Permission)[keyof typeof Permission];

const signedIn: Permission[] = [
  Permission.PasswordChange,
  Permission.SessionRead,
  Permission.SessionRevoke,
  Permission.MfaEnrol,
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
  ]),
  'staff:dpo': new Set([...signedIn, Permission.AuditRead, Permission.StaffRead]),
  'staff:admin': new Set([...signedIn, Permission.StaffRead, Permission.AvailabilityRead, Permission.AvailabilityManage]),
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
