import { z } from 'zod';
import { Uuid } from '../../contracts/common';
import { Notes, NotesInput } from '../../contracts/consultations';
import { readNotes, writeNotes } from '../../modules/consultations/consultation-notes';
import { defineRoute, patientIdsOf } from '../define-route';

export const getConsultationNotes = defineRoute({
  method: 'GET',
  url: '/api/consultations/:consultationId/notes',
  summary: "The clinician's notes of a consultation (the patient sees them once it has ended)",
  tags: ['consultations'],
  access: { permission: 'notes.read' },
  feature: 'notes',
  params: z.strictObject({ consultationId: Uuid }),
  response: Notes,
  egress: (n) => patientIdsOf([n]),
  handler: async ({ scope, params }) => readNotes(scope, params.consultationId),
});

export const putConsultationNotes = defineRoute({
  method: 'PUT',
  url: '/api/consultations/:consultationId/notes',
  summary: "The clinician writes (replaces) the consultation's notes",
  tags: ['consultations'],
  access: { permission: 'notes.write' },
  feature: 'notes',
  params: z.strictObject({ consultationId: Uuid }),
  body: NotesInput,
  response: Notes,
  egress: (n) => patientIdsOf([n]),
  handler: async ({ scope, params, body }) => writeNotes(scope, params.consultationId, body.body),
});
