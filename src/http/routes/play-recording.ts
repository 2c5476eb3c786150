import { z } from 'zod';
import type { Principal } from '../../access/principal';
import type { RequestContext } from '../../access/request-context';
import type { AppDeps } from '../app-deps';
import { Uuid } from '../../contracts/common';
import { AppError } from '../../errors';
import { openReplayStream, prepareReplayMedia, type ReplayMedia } from '../../modules/recordings/recordings';
import { TamperError } from '../../modules/recordings/sealed-segments';
import { defineRoute } from '../define-route';

/**
 * The replay itself, with HTTP range requests so a browser can seek. Each request is audited,
 * before a byte is sent, with the bytes it will get and the seconds they hold; a request the
 * viewer cut short is audited again with what it really received.
 */
export const playRecording = defineRoute({
  method: 'GET',
  url: '/api/recordings/:recordingId/media',
  summary: 'The recording (video/webm), decrypted on the fly; supports Range requests (206) for seeking',
  tags: ['recordings'],
  access: { permission: 'recording.play' },
  params: z.strictObject({ recordingId: Uuid }),
  response: z.any(),
  produces: 'video/webm',
  egress: (m: ReplayMedia) => [m.patientId],
  handler: async ({ scope, params, headers }) => {
    const range = headers.range;
    return prepareReplayMedia(scope, params.recordingId, typeof range === 'string' ? range : undefined);
  },
  send: async (media, reply, { deps, principal, request }) => {
    const length = media.end - media.start + 1;
    const abort = new AbortController();
    let stream;
    try {
      // reply.send pipes the stream into reply.raw, its only consumer (the listener below only
      // counts); its socket carries the bytes on (a cut-short stream's buffers are reused once it closed).
      const socket = reply.raw.socket;
      stream = await openReplayStream(deps.recordings, media, { signal: abort.signal, sink: reply.raw, ...(socket ? { carrier: socket } : {}) });
    } catch (err) {
      if (err instanceof TamperError) throw damaged(deps, media, principal, request);
      throw err;
    }
    let sent = 0;
    let damage = false;
    stream.on('data', (b: Buffer) => {
      sent += b.length;
    });
    stream.on('error', (err) => {
      if (err instanceof TamperError) {
        damage = true;
        void damaged(deps, media, principal, request);
      }
    });
    reply.raw.once('close', () => {
      abort.abort();
      // What was handed to the response by now: counted once, so the range and the byte count agree.
      const got = sent;
      if (got < length && !damage) {
        const end = media.start + got - 1;
        deps.scopes
          .run(principal, request, async (scope) =>
            scope.audit({
              action: 'recording.play_cut_short',
              objectType: 'recording',
              objectId: media.recordingId,
              patientId: media.patientId,
              details: { range: got > 0 ? `${media.start}-${end}` : 'none', bytes: got },
            }),
            // Nothing but the event is written: it joins the reads' group commit (one WAL flush for
            // all that arrive together) rather than taking the chain head for a commit of its own,
            // which every seek's cut-short event did, holding up the next seeks' play events.
            { readOnly: true },
          )
          .catch((err: Error) => deps.logger.error({ errName: err.name }, 'could not audit a replay cut short'));
      }
    });
    reply
      .code(media.partial ? 206 : 200)
      .header('content-type', media.mediaType)
      .header('accept-ranges', 'bytes')
      .header('content-length', String(length))
      .header('cache-control', 'no-store');
    if (media.partial) reply.header('content-range', `bytes ${media.start}-${media.end}/${media.size}`);
    await reply.send(stream);
  },
});

function damaged(deps: AppDeps, media: ReplayMedia, principal: Principal, request: RequestContext) {
  deps.logger.fatal({ alert: 'recording_damaged', recordingId: media.recordingId, requestId: request.requestId }, 'a recording failed its integrity check');
  deps.scopes
    .recordDenial(principal, request, {
      action: 'recording.integrity_failed',
      objectType: 'recording',
      objectId: media.recordingId,
      patientId: media.patientId,
      outcome: 'failure',
    })
    .catch(() => undefined);
  return new AppError('recording_damaged', 'This recording failed its integrity check and cannot be played. The team has been alerted.');
}
