import type { FastifyReply } from 'fastify';
import type { Readable } from 'node:stream';
import { z } from 'zod';
import type { Principal } from '../../access/principal';
import type { RequestContext } from '../../access/request-context';
import type { AppDeps } from '../app-deps';
import { Uuid } from '../../contracts/common';
import { AppError } from '../../errors';
import { featureDisabled } from '../../modules/features/features';
import { openReplayStream, prepareReplayMedia, secondsCovered, type ReplayMedia } from '../../modules/recordings/recordings';
import { TamperError } from '../../modules/recordings/sealed-segments';
import { defineRoute, type SendContext } from '../define-route';

/**
 * The replay itself, with HTTP range requests so a browser can seek. Each request is audited,
 * before a byte is sent, with the bytes it will get and the seconds they hold; a request the
 * viewer cut short is audited again with what it really received. Switching replays off stops
 * the replays being sent at that moment too, audited the same way.
 */
export const playRecording = defineRoute({
  method: 'GET',
  url: '/api/recordings/:recordingId/media',
  summary: 'The recording (video/webm), decrypted on the fly; supports Range requests (206) for seeking',
  tags: ['recordings'],
  access: { permission: 'recording.play' },
  feature: 'replay_playback',
  params: z.strictObject({ recordingId: Uuid }),
  response: z.any(),
  produces: 'video/webm',
  egress: (m: ReplayMedia) => [{ patientId: m.patientId, clinicianId: m.clinicianId }],
  handler: async ({ scope, params, headers }) => {
    const range = headers.range;
    return prepareReplayMedia(scope, params.recordingId, typeof range === 'string' ? range : undefined);
  },
  // The recording is opened, and its first segment read and checked, while the play event is being
  // made durable; not a byte is written before `send`, which runs once it is.
  prepare: {
    start: async (media, reply, { deps }) => {
      const viewer = watchViewer(reply);
      // Gone already (during the session check or the read): nothing is opened.
      viewer.signal.throwIfAborted();
      // reply.send pipes the stream into reply.raw, its only consumer (the listener in `send` only
      // counts); its socket carries the bytes on (a cut-short stream's buffers are reused once it closed).
      const socket = reply.raw.socket;
      const stream = await openReplayStream(deps.recordings, media, {
        signal: viewer.signal,
        sink: reply.raw,
        ...(socket ? { carrier: socket } : {}),
      });
      // The stream reads on (the batch after the first) before `send` runs: damage found then is
      // kept for `send`, which answers it as damage rather than piping an errored stream.
      const opened: OpenedReplay = { stream, viewer, failure: null };
      stream.once('error', (err) => (opened.failure ??= err));
      return opened;
    },
    discard: ({ stream }) => void stream.destroy(),
  },
  // Its deadline passed after the play event was written but before a byte was sent.
  stopped: (media, ctx) => auditCutShort(ctx, media, 0, { cutBy: 'deadline' }),
  send: async (media, reply, { deps, principal, request }, prepared) => {
    if (!prepared) throw new Error('the replay was not prepared');
    const length = media.end - media.start + 1;
    let sent = 0;
    let damage = false;
    let switchedOff = false;
    // What was handed to the response by the time the viewer went: counted once, so the range
    // and the byte count agree. A viewer gone before a byte was sent is audited too.
    const cutShort = () => {
      const got = sent;
      if (got >= length) return;
      // Cut short by damage further in, or by the kill switch, too: what the viewer did receive is
      // audited all the same.
      const why: Record<string, string> = damage ? { cutBy: 'damage' } : switchedOff ? { cutBy: 'feature_disabled' } : {};
      auditCutShort({ deps, principal, request }, media, got, why).catch((err: Error) =>
        deps.logger.error({ errName: err.name }, 'could not audit a replay cut short'),
      );
    };
    let opened: OpenedReplay;
    try {
      opened = await prepared;
    } catch (err) {
      if (err instanceof TamperError) throw damaged(deps, media, principal, request);
      // The viewer went while the recording was being opened (the open was aborted): nobody to answer.
      if (err instanceof Error && err.name === 'AbortError') {
        cutShort();
        return;
      }
      throw err;
    }
    const { stream, viewer } = opened;
    if (opened.failure && !viewer.gone) {
      stream.destroy();
      if (opened.failure instanceof TamperError) throw damaged(deps, media, principal, request);
      throw opened.failure;
    }
    if (viewer.gone) {
      // Gone while the play event was being made durable: the stream was stopped, nothing is sent.
      // Damage it had already found is still raised: the recording is damaged whoever is watching.
      stream.destroy();
      if (opened.failure instanceof TamperError) void damaged(deps, media, principal, request);
      cutShort();
      return;
    }
    // Switched off after the route's own check, while the play event was being made durable: the
    // viewer gets the 503 that check would now give, and the audit trail that nothing was sent.
    if (!deps.features.isEnabledNow('replay_playback')) {
      stream.destroy();
      switchedOff = true;
      cutShort();
      throw featureDisabled('replay_playback');
    }
    // Switched off while this replay is being sent: the response is destroyed as if the viewer had
    // gone, so the stream stops the same way and `cutShort` audits what they had received.
    const stopFollowingSwitch = deps.features.onChange((changed) => {
      if (!changed.includes('replay_playback') || deps.features.isEnabledNow('replay_playback')) return;
      switchedOff = true;
      reply.raw.destroy();
    });
    reply.raw.once('close', stopFollowingSwitch);
    stream.on('data', (b: Buffer) => {
      sent += b.length;
    });
    stream.on('error', (err) => {
      if (err instanceof TamperError) {
        damage = true;
        void damaged(deps, media, principal, request);
      }
    });
    viewer.onGone(cutShort);
    reply
      .code(media.partial ? 206 : 200)
      .header('content-type', media.mediaType)
      .header('accept-ranges', 'bytes')
      .header('content-length', String(length))
      .header('cache-control', 'no-store');
    if (media.partial) reply.header('content-range', `bytes ${media.start}-${media.end}/${media.size}`);
    deps.metrics.replayStreamsOpen.inc();
    stream.once('close', () => deps.metrics.replayStreamsOpen.dec());
    await reply.send(stream);
  },
});

/** A replay that ended before its range did: the bytes received and the seconds they hold, as the play event has for the bytes asked for. */
function auditCutShort({ deps, principal, request }: SendContext, media: ReplayMedia, got: number, why: Record<string, string>): Promise<void> {
  const end = media.start + got - 1;
  return deps.scopes.run(
    principal,
    request,
    async (scope) =>
      scope.audit({
        action: 'recording.play_cut_short',
        objectType: 'recording',
        objectId: media.recordingId,
        patientId: media.patientId,
        details:
          got > 0
            ? { range: `${media.start}-${end}`, bytes: got, ...secondsCovered(media.timeIndex, media.durationMs, media.start, end), ...why }
            : { range: 'none', bytes: 0, ...why },
      }),
    // Nothing but the event is written: it joins the reads' group commit (one WAL flush for
    // all that arrive together) rather than taking the chain head for a commit of its own,
    // which every seek's cut-short event did, holding up the next seeks' play events.
    { readOnly: true },
  );
}

interface OpenedReplay {
  stream: Readable;
  viewer: Viewer;
  /** The stream's error, if it failed before `send` took it. */
  failure: Error | null;
}

interface Viewer {
  /** Aborted when the response closes: the stream stops reading. */
  signal: AbortSignal;
  /** The response has closed. */
  readonly gone: boolean;
  /** Runs `fn` when the response closes, or at once if it already has. */
  onGone(fn: () => void): void;
}

/** From the moment the replay starts being opened: a viewer who leaves early is still seen leaving. */
function watchViewer(reply: FastifyReply): Viewer {
  const abort = new AbortController();
  let gone = false;
  let then: (() => void) | undefined;
  const leave = () => {
    gone = true;
    abort.abort();
    then?.();
  };
  // Closed before the replay started being prepared: its 'close' has been and gone.
  if (reply.raw.closed || reply.raw.destroyed || reply.raw.socket?.destroyed) leave();
  else reply.raw.once('close', leave);
  return {
    signal: abort.signal,
    get gone() {
      return gone;
    },
    onGone: (fn) => {
      if (gone) fn();
      else then = fn;
    },
  };
}

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
