import path from 'node:path';
import type { Logger } from 'pino';
import { createScopes } from './access/scope';
import type { Config } from './config';
import { openDatabase, type Database } from './db';
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
import { ensureMasterKeyFile, readMasterKeyFile } from './modules/recordings/recording-keys';
import type { RecordingDeps } from './modules/recordings/recordings';

export interface Service {
  config: Config;
  db: Database;
  deps: AppDeps;
  built: BuiltApp;
  close(): Promise<void>;
}

export async function openConfiguredDatabase(config: Config): Promise<Database> {
  return config.database.kind === 'pglite'
    ? openDatabase({ kind: 'pglite', dataDir: config.database.dataDir, serviceRole: config.serviceRole })
    : openDatabase({ ...config.database, kind: 'postgres', serviceRole: config.serviceRole });
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
  const db = opts.db ?? (await openConfiguredDatabase(config));
  if (opts.migrate !== false) {
    const { applied } = await db.migrate();
    if (applied.length) logger.info({ applied }, 'database migrated');
  }
  if (db.kind === 'postgres') {
    const role = await db.inspectServiceRole();
    const unsafe = role.superuser || role.bypassRls || role.ownsTables > 0;
    if (unsafe) {
      const msg = `the service connects as "${role.sessionUser}", which ${role.superuser ? 'is a superuser' : role.bypassRls ? 'can bypass row-level security' : 'owns tables'}; use a role that owns nothing (see README, "PostgreSQL")`;
      if (config.mode === 'production') throw new Error(msg);
      logger.warn(`${msg}. Every transaction still switches to ${config.serviceRole}, so RLS applies, but fix this before production.`);
    }
  }
  const scopes = createScopes(db);
  const sessions = new SessionDirectory(scopes, { idleMs: config.sessionIdleMs, absoluteMs: config.sessionAbsoluteMs });
  const stopListening = await db.listen(SESSION_CHANNEL, (payload) => {
    try {
      sessions.forget(JSON.parse(payload));
    } catch {
      sessions.clear();
    }
  });
  const rec = config.recordings;
  // Recordings are sealed under this key; production must be given one (config refuses otherwise).
  const masterKey = rec.createMasterKeyIfMissing ? await ensureMasterKeyFile(rec.masterKeyFile) : await readMasterKeyFile(rec.masterKeyFile);
  const finaliser = new RecordingFinaliser(scopes, logger);
  const hub = new SignallingHub(config.consultations.signalPingMs);
  const recordings: RecordingDeps = {
    blobs: createLocalBlobStore(rec.blobDir),
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
    identity: { scopes, sessions, issuer: config.clinicName, registrationsPerAddress: config.registrationsPerAddress },
    consultations: {
      hub,
      iceServersFor: (accountId) => iceServersFor(iceSettings, accountId),
      joinWindow: { earlyMs: config.consultations.joinEarlyMs, lateMs: config.consultations.joinLateMs },
    },
    recordings,
    logger: logger as unknown as AppDeps['logger'],
    databaseKind: db.kind,
  };
  const built = await buildApp(deps, { webRoot: opts.webRoot ?? path.resolve('dist/web') });
  const stopSignalling = attachSignalling(built.app, deps);
  if (opts.sweepRecordings !== false) finaliser.start(30_000);
  return {
    config,
    db,
    deps,
    built,
    close: async () => {
      await stopSignalling();
      await finaliser.stop();
      await built.app.close();
      await scopes.close();
      await stopListening();
      if (!opts.db) await db.close();
    },
  };
}
