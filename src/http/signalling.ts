import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { WebSocketServer, type WebSocket } from 'ws';
import { hasPermission } from '../access/permissions';
import { featureDisabled } from '../modules/features/features';
import type { Principal } from '../access/principal';
import type { RequestContext } from '../access/request-context';
import { ClientSignal, SignalClose, type ServerSignal } from '../contracts/consultations';
import { databaseFailureAnswer } from './database-failure';
import { AppError } from '../errors';
import { signallingMembership } from '../modules/consultations/consultations';
import type { Peer } from '../modules/consultations/signalling-hub';
import { SESSION_COOKIE } from '../modules/identity/session-tokens';
import type { AppDeps } from './app-deps';
import { clientAddress, compileTrust } from './client-address';
import { sameOrigin } from './register-route';

const SIGNAL_PATH = /^\/api\/consultations\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\/signal\/?$/i;
const MAX_MESSAGE_BYTES = 64 * 1024;
/** Messages per peer per window: an offer and a burst of ICE candidates fit easily. */
const RATE = { messages: 300, windowMs: 10_000 };
const SESSION_SWEEP_MS = 15_000;
/** A socket heard nothing from (no message, no pong) for this many of the page's ping intervals is closed. */
const SILENT_INTERVALS = 2.5;
const PERMISSION = 'consultation.signal' as const;

/**
 * The consultation's signalling WebSocket. The upgrade is refused with a plain HTTP answer unless
 * the caller has a session, the permission, comes from our own origin, and is a party of the
 * consultation (the same checks, audit and 404 as the HTTP route). After that every message is
 * checked again: the session must still be valid, and the hub relays only to the other party of
 * this same consultation. A connection that goes quiet (a half-open TCP connection never closes by
 * itself) is closed, so presence is true: the page pings every `signalPingMs` (told in `welcome`),
 * and the server sends WebSocket pings of its own, which browsers answer however they throttle a
 * background tab's timers.
 */
/** The audit trail's name for each close the server makes with a code (see SignalClose). */
const CLOSE_REASONS: Record<number, string> = {
  [SignalClose.unauthenticated]: 'session_ended',
  [SignalClose.notFound]: 'not_member',
  [SignalClose.ended]: 'consultation_ended',
  [SignalClose.badMessage]: 'bad_message',
  [SignalClose.tooMuch]: 'too_many_messages',
  [SignalClose.replaced]: 'replaced_by_newer_connection',
  [SignalClose.featureDisabled]: 'feature_disabled',
  [SignalClose.shuttingDown]: 'server_shutting_down',
};

export function attachSignalling(app: FastifyInstance, deps: AppDeps): () => Promise<void> {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
  const stopCounting = deps.metrics.observeGauge('signallingSocketsOpen', () => wss.clients.size);
  const hub = deps.consultations.hub;
  const tokens = new Map<Peer, string>();
  const trust = deps.config.trustProxy.length > 0 ? compileTrust(deps.config.trustProxy) : null;
  const pingMs = deps.config.consultations.signalPingMs;

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const match = SIGNAL_PATH.exec((req.url ?? '').split('?')[0] ?? '');
    if (!match) return refuse(socket, 404, 'not_found');
    const consultationId = match[1]!.toLowerCase();
    const request: RequestContext = {
      requestId: randomUUID(),
      clientIp: clientAddress(req, trust),
      userAgent: typeof req.headers['user-agent'] === 'string' ? req.headers['user-agent'] : null,
    };
    // Admission has the same deadline as any request; the socket that follows has none.
    const admission: RequestContext = { ...request, signal: AbortSignal.timeout(deps.config.requestDeadlineMs) };
    void admit(req, consultationId, admission).then(
      (admitted) => {
        if (!admitted) return;
        wss.handleUpgrade(req, socket, head, (ws) => connect(ws, admitted, consultationId, request));
      },
      (err: unknown) => {
        if (err instanceof AppError) return refuse(socket, err.status, err.code);
        const failure = databaseFailureAnswer(err);
        if (failure) return refuse(socket, failure.status, failure.code);
        deps.logger.error({ errName: (err as Error).name }, 'signalling upgrade failed');
        refuse(socket, 500, 'internal');
      },
    );
  };

  async function admit(req: IncomingMessage, consultationId: string, request: RequestContext) {
    const token = app.parseCookie(req.headers.cookie ?? '')[SESSION_COOKIE];
    const session = await deps.sessions.authenticate(token, request);
    const principal: Principal = session?.principal ?? { kind: 'anonymous' };
    const deny = async (reason: string, error: AppError) => {
      await deps.scopes.recordDenial(principal, request, { action: PERMISSION, objectType: 'consultation', objectId: consultationId, details: { reason } });
      throw error;
    };
    // A page on another site may not open a socket with our cookies (cross-site WebSocket hijacking).
    if (!sameOrigin({ headers: req.headers }, deps.config.publicUrl)) await deny('origin', new AppError('csrf_failed', 'Cross-site connection refused.'));
    if (!session || !token) return deny('unauthenticated', new AppError('unauthenticated', 'Sign in to continue.'));
    if (!hasPermission(principal, PERMISSION)) return deny('not_permitted', new AppError('not_found', 'Not found'));
    // An account the breach guard throttled (probing others' ids) opens no call either.
    if ('accountId' in principal && deps.guard.isThrottled(principal.accountId)) {
      throw new AppError('throttled', 'Too many requests for records that could not be found. Please wait a while before trying again.');
    }
    // A kill switch refuses new calls here; the sockets already open are closed when it changes (below).
    if (!(await deps.features.isEnabled('consultation_join'))) throw featureDisabled('consultation_join');
    try {
      const membership = await deps.scopes.run(principal, request, (scope) => signallingMembership(scope, consultationId), { readOnly: true });
      return { principal: session.principal, token, ...membership };
    } catch (err) {
      if (err instanceof AppError && err.code === 'not_found') return deny('not_found', err);
      throw err;
    }
  }

  function connect(
    ws: WebSocket,
    admitted: { principal: Extract<Principal, { accountId: string }>; token: string; role: 'patient' | 'clinician'; patientId: string; clinicianId: string },
    consultationId: string,
    request: RequestContext,
  ) {
    const peer: Peer = {
      consultationId,
      accountId: admitted.principal.accountId,
      sessionId: admitted.principal.sessionId,
      role: admitted.role,
      send: (m: ServerSignal) => {
        if (ws.readyState !== ws.OPEN) return;
        ws.send(JSON.stringify(m));
      },
      close: (code, reason) => drop(CLOSE_REASONS[code] ?? 'closed_by_server', code, reason),
    };
    tokens.set(peer, admitted.token);
    // Why the server dropped this socket, for the audit trail (unset: the client went).
    let dropReason: string | undefined;
    function drop(why: string, code?: number, text?: string) {
      dropReason ??= why;
      if (code === undefined) ws.terminate();
      else ws.close(code, text);
    }
    let windowStart = Date.now();
    let count = 0;
    let queue = Promise.resolve();
    let heardAt = Date.now();

    // Nothing heard for 2.5 intervals: the connection is gone (terminated, not closed, as a close
    // handshake would wait for an answer that will not come); the hub then updates presence.
    const liveness = setInterval(() => {
      const silentMs = Date.now() - heardAt;
      if (silentMs > SILENT_INTERVALS * pingMs) drop('silent');
      else if (silentMs >= pingMs && ws.readyState === ws.OPEN) ws.ping();
    }, pingMs / 2);
    liveness.unref();
    ws.on('pong', () => (heardAt = Date.now()));

    ws.on('message', (data, isBinary) => {
      heardAt = Date.now();
      // Handled one after another, so relayed messages keep their order.
      queue = queue.then(() => onMessage(data as Buffer, isBinary)).catch((err: Error) => {
        deps.logger.error({ errName: err.name }, 'signalling message failed');
        drop('internal_error', 1011, 'internal error');
      });
    });

    async function onMessage(data: Buffer, isBinary: boolean) {
      const now = Date.now();
      if (now - windowStart > RATE.windowMs) {
        windowStart = now;
        count = 0;
      }
      if (++count > RATE.messages) return drop('too_many_messages', SignalClose.tooMuch, 'too many messages');
      if (isBinary) return drop('binary_message', SignalClose.badMessage, 'text messages only');
      let parsed: ClientSignal;
      try {
        const r = ClientSignal.safeParse(JSON.parse(data.toString('utf8')));
        if (!r.success) return drop('bad_message', SignalClose.badMessage, 'message not understood');
        parsed = r.data;
      } catch {
        return drop('bad_message', SignalClose.badMessage, 'message not understood');
      }
      // The session is checked on every message (cached for seconds; a revocation clears it at once).
      const session = await deps.sessions.authenticate(admitted.token, request);
      if (!session || session.principal.accountId !== peer.accountId || session.principal.sessionId !== peer.sessionId) {
        return drop('session_ended', SignalClose.unauthenticated, 'session ended');
      }
      if (parsed.type === 'ping') return peer.send({ type: 'pong' });
      const outcome = hub.relay(peer, parsed);
      if (outcome === 'not_member') return drop('not_member', SignalClose.notFound, 'not found');
      if (outcome === 'ended') return drop('consultation_ended', SignalClose.ended, 'the consultation has ended');
    }

    ws.on('close', (code) => {
      clearInterval(liveness);
      // The server's own reason, or what the client's close says: a clean close, or the line lost.
      const reason = dropReason ?? (code === 1000 || code === 1001 ? 'client_closed' : 'connection_lost');
      tokens.delete(peer);
      hub.detach(peer);
      deps.scopes
        .run(admitted.principal, request, async (scope) =>
          scope.audit({ action: 'consultation.disconnect', objectType: 'consultation', objectId: consultationId, patientId: admitted.patientId, details: { as: admitted.role, reason, code } }),
        )
        .catch((err: Error) => deps.logger.error({ errName: err.name }, 'could not audit a disconnect'));
    });
    ws.on('error', () => drop('socket_error'));

    hub.attach(peer, { patientId: admitted.patientId, clinicianId: admitted.clinicianId });
    // Switched off after this socket was admitted but before it joined the hub: the cut below missed it.
    if (!deps.features.isEnabledNow('consultation_join')) peer.close(SignalClose.featureDisabled, 'calls are switched off');
  }

  // Switching calls off ends the calls already connected to this process, not only new ones.
  const stopFollowingSwitch = deps.features.onChange((changed) => {
    if (!changed.includes('consultation_join') || deps.features.isEnabledNow('consultation_join')) return;
    for (const peer of hub.peers()) peer.close(SignalClose.featureDisabled, 'calls are switched off');
  });

  // Sessions that end while a socket is quiet (sign-out elsewhere, expiry) close their sockets too.
  const sweep = setInterval(() => {
    for (const peer of hub.peers()) {
      const token = tokens.get(peer);
      const request: RequestContext = { requestId: randomUUID(), clientIp: null, userAgent: null };
      void deps.sessions.authenticate(token, request).then(
        (s) => {
          if (!s || s.principal.sessionId !== peer.sessionId) peer.close(SignalClose.unauthenticated, 'session ended');
        },
        () => undefined,
      );
    }
  }, SESSION_SWEEP_MS);
  sweep.unref();

  app.server.on('upgrade', onUpgrade);
  return async () => {
    clearInterval(sweep);
    stopFollowingSwitch();
    app.server.off('upgrade', onUpgrade);
    hub.closeAll(SignalClose.shuttingDown, 'server shutting down');
    stopCounting();
    for (const ws of wss.clients) ws.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  };
}

function refuse(socket: Duplex, status: number, code: string) {
  const reason = status === 401 ? 'Unauthorized' : status === 403 ? 'Forbidden' : status === 404 ? 'Not Found' : status === 409 ? 'Conflict' : status === 429 ? 'Too Many Requests' : 'Error';
  const body = JSON.stringify({ error: { code } });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
