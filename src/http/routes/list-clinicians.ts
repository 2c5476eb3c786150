import { ClinicianList } from '../../contracts/appointments';
import { listClinicians as list } from '../../modules/appointments/free-slots';
import { defineRoute } from '../define-route';

export const listClinicians = defineRoute({
  method: 'GET',
  url: '/api/clinicians',
  summary: 'The GPs a patient can book with',
  tags: ['appointments'],
  access: { permission: 'clinician.read' },
  feature: 'booking',
  response: ClinicianList,
  egress: 'none',
  handler: async ({ scope }) => ({ clinicians: await list(scope) }),
});
