import { PatientProfile } from '../../contracts/profile';
import { readMyProfile } from '../../modules/identity/patient-profile';
import { defineRoute } from '../define-route';

export const getProfile = defineRoute({
  method: 'GET',
  url: '/api/profile',
  summary: "The signed-in patient's own profile",
  tags: ['patient'],
  access: { permission: 'profile.read' },
  feature: 'profile',
  response: PatientProfile,
  egress: (p) => [p.patientId],
  handler: async ({ scope }) => readMyProfile(scope),
});
