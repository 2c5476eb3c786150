import { AuditEventPage, AuditEventQuery } from '../../contracts/staff';
import { searchAuditEvents as search } from '../../modules/audit/audit-trail';
import { defineRoute } from '../define-route';

export const searchAuditEvents = defineRoute({
  method: 'POST',
  url: '/api/audit/events/search',
  summary: 'Search the audit trail, newest first (DPO). A POST so that no identifier travels in a URL',
  tags: ['audit'],
  access: { permission: 'audit.read' },
  body: AuditEventQuery,
  response: AuditEventPage,
  egress: 'none',
  handler: async ({ scope, body }) => search(scope, body),
});
