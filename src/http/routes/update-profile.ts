import { PatientProfile, UpdateProfileInput } from '../../contracts/profile';
import { updateMyProfile } from '../../modules/identity/patient-profile';
import { defineRoute } from '../define-route';

export const updateProfile = defineRoute({
  method: 'PATCH',
  url: '/api/profile',
  summary: "Change the signed-in patient's name",
  tags: ['patient'],
  access: { permission: 'profile.update' },
  feature: 'profile',
  body: UpdateProfileInput,
  response: PatientProfile,
  egress: (p) => [p.patientId],
  handler: async ({ scope, body }) => updateMyProfile(scope, body),
});
