import { StaffList } from '../../contracts/staff';
import { listStaff as list } from '../../modules/identity/staff-accounts';
import { defineRoute } from '../define-route';

export const listStaff = defineRoute({
  method: 'GET',
  url: '/api/staff',
  summary: "The clinic's clinicians and staff",
  tags: ['staff'],
  access: { permission: 'staff.read' },
  response: StaffList,
  egress: 'none',
  handler: async ({ scope }) => ({ staff: await list(scope) }),
});
