import { AuditVerification } from '../../contracts/staff';
import { verifyAuditTrail as verify } from '../../modules/audit/audit-trail';
import { defineRoute } from '../define-route';

export const verifyAuditTrail = defineRoute({
  method: 'POST',
  url: '/api/audit/verify',
  summary: 'Walk the hash chain of the audit log and name the first bad event (DPO)',
  tags: ['audit'],
  access: { permission: 'audit.read' },
  response: AuditVerification,
  egress: 'none',
  handler: async ({ scope }) => verify(scope),
});
