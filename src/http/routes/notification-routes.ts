import { z } from 'zod';
import { NotificationList } from '../../contracts/appointments';
import { Ok, Uuid } from '../../contracts/common';
import { listMyNotifications, markNotificationRead as markRead } from '../../modules/appointments/notifications';
import { defineRoute, patientIdsOf } from '../define-route';

export const listNotifications = defineRoute({
  method: 'GET',
  url: '/api/notifications',
  summary: 'Your in-app notifications, newest first',
  tags: ['notifications'],
  access: { permission: 'notification.read' },
  feature: 'notifications',
  response: NotificationList,
  egress: (out) => patientIdsOf(out.notifications),
  handler: async ({ scope }) => ({ notifications: await listMyNotifications(scope) }),
});

export const markNotificationRead = defineRoute({
  method: 'POST',
  url: '/api/notifications/:notificationId/read',
  summary: 'Mark one of your notifications read',
  tags: ['notifications'],
  access: { permission: 'notification.read' },
  feature: 'notifications',
  params: z.strictObject({ notificationId: Uuid }),
  response: Ok,
  egress: 'none',
  handler: async ({ scope, params }) => {
    await markRead(scope, params.notificationId);
    return { ok: true as const };
  },
});
