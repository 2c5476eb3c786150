import path from 'node:path';
import type { Logger } from 'pino';
import { createScopes } from './access/scope';
import type { Config } from './config';
import { openDatabase, type Database } from './db';
import { buildApp, type BuiltApp } from './http/app';
import type { AppDeps } from './http/app-deps';
import { createLogger } from './logger';
import { SESSION_CHANNEL, SessionDirectory } from './modules/identity/sessions';

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
  opts: { logger?: Logger; db?: Database; webRoot?: string; migrate?: boolean } = {},
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
  const deps: AppDeps = {
    config,
    scopes,
    sessions,
    identity: { scopes, sessions, issuer: config.clinicName, registrationsPerAddress: config.registrationsPerAddress },
    logger: logger as unknown as AppDeps['logger'],
    databaseKind: db.kind,
  };
  const built = await buildApp(deps, { webRoot: opts.webRoot ?? path.resolve('dist/web') });
  return {
    config,
    db,
    deps,
    built,
    close: async () => {
      await built.app.close();
      await scopes.close();
      await stopListening();
      if (!opts.db) await db.close();
    },
  };
}
