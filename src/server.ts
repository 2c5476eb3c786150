import path from 'node:path';
import type { Logger } from 'pino';
import { createScopes } from './access/scope';
import type { Config } from './config';
import { classifyDatabaseError, DeadlineExceeded, listMigrations, openDatabase, type Database, type DatabaseObserver } from './db';
import { buildApp, type BuiltApp } from './http/app';
import type { AppDeps } from './http/app-deps';
import { createLogger } from './logger';
import { readFile } from 'node:fs/promises';
import { attachSignalling } from './http/signalling';
import { iceServersFor } from './modules/consultations/ice-servers';
import { SignallingHub } from './modules/consultations/signalling-hub';
import { SESSION_CHANNEL, SessionDirectory } from './modules/identity/sessions';
import { createLocalBlobStore } from './modules/recordings/blob-store';
import { RecordingFinaliser } from './modules/recordings/finaliser';
import { mfaSecretBox, sealPlainMfaSecrets } from './modules/identity/mfa-secrets';
import { ensureMasterKeyFile, readMasterKeyFile } from './modules/recordings/recording-keys';
import type { RecordingDeps } from './modules/recordings/recordings';
import { Readiness } from './modules/health/readiness';
import { expireIdempotencyKeys } from './http/idempotency';
import { noRequest } from './access/request-context';
import { createMetrics, type Metrics } from './observability/metrics';
import { startOperatorServer } from './observability/operator-server';
import { FeatureFlags } from './modules/features/feature-flags';
import { FEATURE_CHANNEL } from './modules/features/features';
import { Guard } from './modules/guard/guard';
import { activeFaults, setFaults } from './testing/fault-points';

export interface Service {
  config: Config;
  db: Database;
  deps: AppDeps;
  built: BuiltApp;
  /** The breach guard (detection, throttles, alerts). */
  guard: Guard;
  /** The operator port's address (`/metrics`), when METRICS_PORT is set. */
  operatorAddress: string | undefined;
  close(): Promise<void>;
}

export async function openConfiguredDatabase(config: Config, observer?: DatabaseObserver): Promise<Database> {
  const watch = observer ? { observer } : {};
  return config.database.kind === 'pglite'
    ? openDatabase({ kind: 'pglite', dataDir: config.database.dataDir, serviceRole: config.serviceRole, ...watch })
    : openDatabase({ ...config.database, kind: 'postgres', serviceRole: config.serviceRole, ...watch });
}

/** Reports the database layer's events to the log: what failed and how, never a client object or a message that could quote data. */
export function databaseObserver(logger: Logger, count?: (err: unknown) => void): DatabaseObserver {
  const code = (err: unknown) => (err as { code?: unknown } | null)?.code;
  return {
    connectionError: (where, err) => {
      logger.warn({ where, errName: (err as Error | null)?.name, errCode: code(err) }, 'database connection lost; it will be replaced');
      // A checked-out client's loss also fails its statement, which the request counts.
      if (where !== 'client') count?.(err);
    },
    listenReconnected: (channel) => logger.info({ channel }, 'database notifications reconnected; what they carry is re-read (sessions dropped, feature switches re-read)'),
  };
}

export class DatabaseUnreachable extends Error {
  override readonly name = 'DatabaseUnreachable';
}

/**
 * Start-up waits for the database (it may be starting too, or failing over), retrying with
 * backoff (0.25 s doubling to 5 s) for up to `timeoutMs`, and says why it waits. Only a
 * database that is unreachable is waited for: wrong credentials or a refused role fail at once.
 */
export async function whenDatabaseAnswers<T>(what: string, fn: () => Promise<T>, timeoutMs: number, logger: Logger): Promise<T> {
  const started = Date.now();
  let delay = 250;
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await fn();
      if (attempt > 1) logger.info({ attempt, waitedMs: Date.now() - started }, `database answered: ${what}`);
      return result;
    } catch (err) {
      const failure = err instanceof DeadlineExceeded ? 'timeout' : classifyDatabaseError(err);
      if (failure !== 'unavailable' && failure !== 'timeout') throw err;
      const errCode = (err as { code?: unknown }).code ?? (err as Error).name;
      const waited = Date.now() - started;
      if (waited + delay > timeoutMs) {
        throw new DatabaseUnreachable(
          `the database did not answer within ${Math.round(timeoutMs / 1000)} s (DATABASE_CONNECT_TIMEOUT) while ${what}: ${String(errCode)}`,
        );
      }
      logger.warn({ attempt, waitedMs: waited, retryInMs: delay, errCode }, `waiting for the database (${what})`);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5_000);
    }
  }
}

/**
 * The composition root: one database, one scope factory, one session directory, the app.
 * Production refuses to run as a database role that could step around row-level security.
 */
export async function createService(
  config: Config,
  opts: { logger?: Logger; db?: Database; webRoot?: string; migrate?: boolean; sweepRecordings?: boolean } = {},
): Promise<Service> {
  const logger: Logger = opts.logger ?? createLogger(config.logLevel);
  // The breach drill's fault points (never in production: config and setFaults both refuse).
  setFaults(config);
  if (activeFaults().length > 0) logger.warn({ faults: activeFaults() }, 'fault points switched on for the breach drill: this process has a broken layer on purpose');
  // The database opens before the metrics exist (start-up may wait for it); its connection losses count once both do.
  const metricsRef: { current?: Metrics } = {};
  const observer = databaseObserver(logger, (err) => metricsRef.current?.countDbError(err));
  const db = opts.db ?? (await openConfiguredDatabase(config, observer));
  db.observe(observer);
  const wait = config.databaseConnectTimeoutMs;
  await whenDatabaseAnswers('connecting', () => db.ping(AbortSignal.timeout(5_000)), wait, logger);
  if (opts.migrate !== false) {
    const { applied } = await whenDatabaseAnswers('migrating', () => db.migrate(), wait, logger);
    if (applied.length) logger.info({ applied }, 'database migrated');
  }
  if (db.kind === 'postgres') {
    const role = await db.inspectServiceRole();
    const unsafe = role.superuser || role.bypassRls || role.ownsTables > 0;
    if (unsafe) {
      const msg = `the service connects as "${role.sessionUser}", which ${role.superuser ? 'is a superuser' : role.bypassRls ? 'can bypass row-level security' : 'owns tables'}; use a role that owns nothing (see README, "PostgreSQL")`;
      // In development too: a statement that ever ran outside a transaction's role switch would
      // run as that role, and the owner's own policies admit everything (USING (true)).
      throw new Error(msg);
    }
  }
  const metrics = createMetrics({ processMetrics: config.metrics.port !== undefined });
  if (db.poolStats) {
    const poolStats = db.poolStats.bind(db);
    metrics.observePool(() => ({ ...poolStats(), ...(config.database.kind === 'postgres' ? { max: config.database.poolSize } : {}) }));
  }
  const scopes = createScopes(db, { onAuditBatch: (s, n, o) => metrics.observeAuditCommit(s, n, o) });
  const sessions = new SessionDirectory(scopes, { idleMs: config.sessionIdleMs, absoluteMs: config.sessionAbsoluteMs });
  const stopListening = await whenDatabaseAnswers(
    'subscribing to session revocations',
    () =>
      db.listen(
        SESSION_CHANNEL,
        (payload) => {
          try {
            sessions.forget(JSON.parse(payload));
          } catch {
            sessions.clear();
          }
        },
        // Revocations sent while the connection was down were missed: forget every cached session.
        () => sessions.clear(),
      ),
    wait,
    logger,
  );
  // Kill switches: subscribed before the first read, so no change falls between the two. Every
  // notification, and every reconnect (notifications sent meanwhile are lost), re-reads them all.
  const features = new FeatureFlags(scopes, logger);
  const refreshFeatures = () => void features.refresh().catch(() => undefined);
  const stopFeatureListening = await whenDatabaseAnswers(
    'subscribing to feature switches',
    () => db.listen(FEATURE_CHANNEL, refreshFeatures, refreshFeatures),
    wait,
    logger,
  );
  await whenDatabaseAnswers('reading the feature switches', () => features.start(), wait, logger);
  // The breach guard: detection over the audit chain (every process runs one; a cursor in the
  // database makes each event judged once), throttles, and alerts pushed to the DPO.
  const guard = new Guard(db, scopes, config.guard, config.guard.webhookUrl, logger);
  await whenDatabaseAnswers('starting the breach guard', () => guard.start(), wait, logger);
  const rec = config.recordings;
  // Recordings are sealed under this key; production must be given one (config refuses otherwise).
  const masterKey = rec.createMasterKeyIfMissing ? await ensureMasterKeyFile(rec.masterKeyFile) : await readMasterKeyFile(rec.masterKeyFile);
  // Authenticator secrets are sealed under the same master key; rows from before are sealed now.
  const mfaSecrets = mfaSecretBox(masterKey);
  const sealed = await sealPlainMfaSecrets(scopes, mfaSecrets, { requestId: 'startup', clientIp: null, userAgent: null });
  if (sealed > 0) logger.info({ accounts: sealed }, 'authenticator secrets stored in plain text have been sealed');
  const finaliser = new RecordingFinaliser(scopes, logger);
  const hub = new SignallingHub(config.consultations.signalPingMs);
  const blobs = createLocalBlobStore(rec.blobDir);
  const readiness = new Readiness({
    db,
    dataDir: config.dataDir,
    blobs,
    minFreeBytes: config.diskMinFreeBytes,
    expectedMigrations: (await listMigrations()).map((m) => m.name),
    onChange: (report) =>
      report.ready
        ? logger.info({ checks: report.checks }, 'ready')
        : logger.warn({ checks: report.checks, freeBytes: report.freeBytes }, 'not ready'),
  });
  const recordings: RecordingDeps = {
    blobs,
    masterKey,
    limits: {
      maxChunkBytes: rec.maxChunkBytes,
      maxRecordingBytes: rec.maxRecordingBytes,
      endGraceMs: 2 * 60_000,
      idleMs: 10 * 60_000,
      finaliseRetryMs: 10 * 60_000,
    },
    finaliser,
    changed: (consultationId) => hub.changed(consultationId),
  };
  finaliser.bind(recordings);
  const ice = config.consultations.ice;
  const turnSecret = ice.turnSecretFile ? (await readFile(ice.turnSecretFile, 'utf8')).trim() : undefined;
  const iceSettings = { stunUrls: ice.stunUrls, turnUrls: ice.turnUrls, turnSecret, turnTtlSeconds: ice.turnTtlSeconds };
  const deps: AppDeps = {
    config,
    scopes,
    sessions,
    identity: { scopes, sessions, issuer: config.clinicName, registrationsPerAddress: config.registrationsPerAddress, mfaSecrets },
    consultations: {
      hub,
      iceServersFor: (accountId) => iceServersFor(iceSettings, accountId),
      joinWindow: { earlyMs: config.consultations.joinEarlyMs, lateMs: config.consultations.joinLateMs },
    },
    recordings,
    readiness,
    metrics,
    features,
    guard,
    logger: logger as unknown as AppDeps['logger'],
    databaseKind: db.kind,
  };
  const built = await buildApp(deps, { webRoot: opts.webRoot ?? path.resolve('dist/web') });
  const stopSignalling = attachSignalling(built.app, deps);
  metricsRef.current = metrics;
  const operator =
    config.metrics.port === undefined
      ? null
      : await startOperatorServer({ host: config.metrics.host, port: config.metrics.port, token: config.metrics.token, metrics, logger });
  if (opts.sweepRecordings !== false) finaliser.start(30_000);
  // Idempotency keys answer retries for a day; then they go.
  const expiry = setInterval(() => {
    scopes
      .system('expire idempotency keys', noRequest('maintenance'), async (scope) => {
        const expired = await expireIdempotencyKeys(scope);
        if (expired > 0) scope.audit({ action: 'idempotency_keys.expire', details: { expired } });
      })
      .catch((err: Error) => logger.warn({ errName: err.name, errCode: (err as { code?: unknown }).code }, 'idempotency key expiry failed; next hour retries'));
  }, 3_600_000);
  expiry.unref();
  return {
    config,
    db,
    deps,
    built,
    guard,
    operatorAddress: operator ? `http://${operator.address.address.includes(':') ? `[${operator.address.address}]` : operator.address.address}:${operator.address.port}` : undefined,
    close: async () => {
      clearInterval(expiry);
      await stopSignalling();
      await finaliser.stop();
      await guard.close();
      await built.app.close();
      await scopes.close();
      await stopListening();
      await stopFeatureListening();
      await features.close();
      if (!opts.db) await db.close();
      await operator?.close();
    },
  };
}
