import { z } from 'zod';
import { ConsultationMode } from './appointments';
import { IsoDateTime, Uuid } from './common';

export const ConsultationStatus = z.enum(['waiting', 'live', 'ended']);
export const ConsentState = z.enum(['none', 'requested', 'granted', 'declined', 'withdrawn']);
export const RecordingStatus = z.enum(['recording', 'finalising', 'ready', 'failed']);
export const Party = z.enum(['patient', 'clinician']);

export const IceServer = z.object({
  urls: z.array(z.string()),
  username: z.string().optional(),
  credential: z.string().optional(),
});

export const Consultation = z.object({
  id: Uuid,
  appointmentId: Uuid,
  /** Which side of the call the caller is. */
  you: Party,
  clinician: z.object({ id: Uuid, displayName: z.string() }),
  /** The patient's name, for the clinician (the patient sees their own). */
  patient: z.object({ displayName: z.string() }),
  startsAt: IsoDateTime,
  endsAt: IsoDateTime,
  bookedMode: ConsultationMode,
  mode: ConsultationMode,
  status: ConsultationStatus,
  startedAt: IsoDateTime.nullable(),
  endedAt: IsoDateTime.nullable(),
  pendingModeRequest: z
    .object({ id: Uuid, toMode: ConsultationMode, requestedBy: Party, createdAt: IsoDateTime })
    .nullable(),
  /** The last request that was answered: the one who asked learns whether it was declined. */
  lastModeAnswer: z
    .object({
      id: Uuid,
      toMode: ConsultationMode,
      requestedBy: Party,
      status: z.enum(['accepted', 'declined', 'withdrawn']),
      answeredAt: IsoDateTime,
    })
    .nullable(),
  consent: z.object({ audio: ConsentState, video: ConsentState }),
  recording: z
    .object({ id: Uuid, status: RecordingStatus, startedAt: IsoDateTime, videoConsented: z.boolean() })
    .nullable(),
  presence: z.object({ patient: z.boolean(), clinician: z.boolean() }),
  rtc: z.object({ iceServers: z.array(IceServer) }),
});
export type Consultation = z.infer<typeof Consultation>;

export const WaitingRoom = z.object({
  consultations: z.array(
    z.object({
      id: Uuid,
      appointmentId: Uuid,
      patient: z.object({ displayName: z.string() }),
      startsAt: IsoDateTime,
      mode: ConsultationMode,
      status: ConsultationStatus,
      patientPresent: z.boolean(),
      patientJoinedAt: IsoDateTime.nullable(),
    }),
  ),
});

export const ModeRequestInput = z.strictObject({ mode: ConsultationMode });
export const ModeAnswerInput = z.strictObject({ accept: z.boolean() });
export const ConsentRequestInput = z.strictObject({ media: ConsultationMode });
export const ConsentInput = z.strictObject({
  media: ConsultationMode,
  decision: z.enum(['granted', 'declined', 'withdrawn']),
});

export const RecordingUpload = z.object({
  id: Uuid,
  status: RecordingStatus,
  /** The next chunk the server expects; chunks are numbered from 0. */
  nextSeq: z.number().int(),
  receivedBytes: z.number().int(),
  maxChunkBytes: z.number().int(),
});

export const ChunkParams = z.strictObject({
  recordingId: Uuid,
  seq: z
    .string()
    .regex(/^(0|[1-9]\d{0,6})$/, 'A chunk number is a whole number from 0.')
    .transform(Number),
});

export const Replay = z.object({
  id: Uuid,
  consultationId: Uuid,
  consultationStartedAt: IsoDateTime.nullable(),
  recordedAt: IsoDateTime,
  clinician: z.object({ id: Uuid, displayName: z.string() }),
  patient: z.object({ displayName: z.string() }),
  /** Video if the patient agreed to video being recorded, else audio. */
  mode: ConsultationMode,
  durationMs: z.number().int(),
  sizeBytes: z.number().int(),
  mediaType: z.string(),
});
export const ReplayList = z.object({ replays: z.array(Replay) });

export const NotesInput = z.strictObject({
  body: z.string().max(20_000, 'Keep notes under 20,000 characters.'),
});
export const Notes = z.object({
  consultationId: Uuid,
  body: z.string(),
  updatedAt: IsoDateTime.nullable(),
});

/** Signalling: what a browser may send over the consultation's WebSocket. */
export const ClientSignal = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('signal'),
    data: z.discriminatedUnion('kind', [
      z.strictObject({ kind: z.enum(['offer', 'answer']), sdp: z.string().max(60_000) }),
      z.strictObject({
        kind: z.literal('ice'),
        candidate: z
          .strictObject({
            candidate: z.string().max(2_000),
            sdpMid: z.string().max(64).nullable().optional(),
            sdpMLineIndex: z.number().int().min(0).max(64).nullable().optional(),
            usernameFragment: z.string().max(256).nullable().optional(),
          })
          .nullable(),
      }),
      z.strictObject({ kind: z.literal('restart') }),
    ]),
  }),
  z.strictObject({ type: z.literal('media'), audio: z.boolean(), video: z.boolean() }),
  z.strictObject({ type: z.literal('ping') }),
]);
export type ClientSignal = z.infer<typeof ClientSignal>;

/** What the server sends. `changed` says: fetch the consultation again. */
export type ServerSignal =
  | { type: 'welcome'; you: 'patient' | 'clinician'; presence: { patient: boolean; clinician: boolean }; /** How often the page pings (ms). */ pingMs: number }
  | { type: 'presence'; presence: { patient: boolean; clinician: boolean } }
  | { type: 'signal'; from: 'patient' | 'clinician'; data: Extract<ClientSignal, { type: 'signal' }>['data'] }
  | { type: 'media'; from: 'patient' | 'clinician'; audio: boolean; video: boolean }
  | { type: 'changed' }
  | { type: 'pong' }
  | { type: 'error'; code: string; message: string };

export { SignalClose } from './signal-close';
