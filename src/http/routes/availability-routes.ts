import { z } from 'zod';
import { Availability, AvailabilityExceptionInput, ReplaceAvailabilityInput } from '../../contracts/appointments';
import { Uuid } from '../../contracts/common';
import {
  addAvailabilityException,
  readAvailability,
  removeAvailabilityException,
  replaceWeeklyAvailability,
} from '../../modules/appointments/availability';
import { defineRoute, type HandlerContext } from '../define-route';

const ClinicianParams = z.strictObject({ clinicianId: Uuid });
const withClinic = <T extends object>(ctx: Pick<HandlerContext<unknown, unknown, unknown>, 'deps'>, out: T) => ({
  ...out,
  timeZone: ctx.deps.config.clinic.timeZone,
  slotMinutes: ctx.deps.config.clinic.slotMinutes,
});

export const getAvailability = defineRoute({
  method: 'GET',
  url: '/api/clinicians/:clinicianId/availability',
  summary: "A clinician's weekly availability and upcoming exceptions (the clinician, or an admin)",
  tags: ['availability'],
  access: { permission: 'availability.read' },
  params: ClinicianParams,
  response: Availability,
  egress: 'none',
  handler: async (ctx) => withClinic(ctx, await readAvailability(ctx.scope, ctx.params.clinicianId)),
});

export const replaceAvailability = defineRoute({
  method: 'PUT',
  url: '/api/clinicians/:clinicianId/availability',
  summary: 'Replace the weekly availability (local times in the clinic zone)',
  tags: ['availability'],
  access: { permission: 'availability.manage' },
  params: ClinicianParams,
  body: ReplaceAvailabilityInput,
  response: Availability,
  egress: 'none',
  handler: async (ctx) => withClinic(ctx, await replaceWeeklyAvailability(ctx.scope, ctx.params.clinicianId, ctx.body.rules)),
});

export const addAvailabilityExceptionRoute = defineRoute({
  method: 'POST',
  url: '/api/clinicians/:clinicianId/availability/exceptions',
  summary: 'Add leave or a blocked period',
  tags: ['availability'],
  access: { permission: 'availability.manage' },
  params: ClinicianParams,
  body: AvailabilityExceptionInput,
  response: Availability,
  status: 201,
  egress: 'none',
  handler: async (ctx) => withClinic(ctx, await addAvailabilityException(ctx.scope, ctx.params.clinicianId, ctx.body)),
});

export const removeAvailabilityExceptionRoute = defineRoute({
  method: 'DELETE',
  url: '/api/clinicians/:clinicianId/availability/exceptions/:exceptionId',
  summary: 'Remove an exception',
  tags: ['availability'],
  access: { permission: 'availability.manage' },
  params: z.strictObject({ clinicianId: Uuid, exceptionId: Uuid }),
  response: Availability,
  egress: 'none',
  handler: async (ctx) => withClinic(ctx, await removeAvailabilityException(ctx.scope, ctx.params.clinicianId, ctx.params.exceptionId)),
});
