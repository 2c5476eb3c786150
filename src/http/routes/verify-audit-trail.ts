import { AuditVerification } from '../../contracts/staff';
import { verifyAuditTrail as verify } from '../../modules/audit/audit-trail';
import { defineRoute } from '../define-route';

export const verifyAuditTrail = defineRoute({
  method: 'POST',
  url: '/api/audit/verify',
  summary: 'Walk the hash chain of the audit log and name the first bad event (DPO)',
  tags: ['audit'],
  access: { permission: 'audit.read' },
  // The chain is walked a page at a time (each statement is quick); the walk grows with the log.
  deadlineMs: 300_000,
  response: AuditVerification,
  egress: 'none',
  handler: async ({ scope }) => verify(scope),
});
