import type { Config } from '../config';
import { DEMO_PEOPLE } from '../demo/demo-clinic';
import { seedDemoClinic } from '../demo/seed-demo-clinic';
import { seedDemoReplays } from '../demo/seed-demo-replays';
import { createService, type Service } from '../server';

/** Demo mode's startup: the demo clinic (people, appointments), then its consultation replays; idempotent. */
export async function seedDemo(service: Pick<Service, 'config' | 'deps'>) {
  const { created } = await service.deps.scopes.system(
    'demo clinic seed',
    { requestId: 'startup', clientIp: null, userAgent: null },
    (scope) => seedDemoClinic(scope, service.config.clinic, service.deps.identity.mfaSecrets),
  );
  const replays = await seedDemoReplays(service.deps.scopes, service.deps.recordings);
  return { created, replays };
}

export async function serve(config: Config): Promise<void> {
  const service = await createService(config);
  const log = service.deps.logger;
  // A promise nobody awaited that failed is a bug to find, not a reason to drop every caller's
  // request: say so loudly (name and code only) and keep serving.
  process.on('unhandledRejection', (err) => {
    log.error({ alert: 'unhandled_rejection', errName: (err as Error | null)?.name, errCode: (err as { code?: unknown } | null)?.code }, 'a promise failed with nobody waiting for it');
  });

  if (config.demo) {
    const { created, replays } = await seedDemo(service);
    if (created) log.info({ created }, 'demo clinic seeded');
    if (replays) log.info({ replays }, 'demo consultation replays seeded');
  }

  const address = await service.built.app.listen({ port: config.port, host: config.host });
  const url = config.publicUrl ?? address.replace('[::1]', 'localhost');
  const where = config.database.kind === 'pglite' ? `embedded PGlite in ${config.database.dataDir}` : 'PostgreSQL (DATABASE_URL)';
  process.stdout.write(`\nConfidant is running at ${url}  (database: ${where}, mode: ${config.mode})\n`);
  if (config.demo) process.stdout.write(demoBanner());

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: draining requests');
    const force = setTimeout(() => {
      log.error('shutdown took longer than 15 s; exiting');
      process.exit(1);
    }, 15_000);
    force.unref();
    try {
      await service.close();
      log.info('stopped cleanly');
      process.exit(0);
    } catch (err) {
      log.error({ errName: (err as Error).name }, 'error while stopping');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

function demoBanner(): string {
  const rows = DEMO_PEOPLE.map(
    (p) => `  ${p.role.padEnd(9)} ${p.email.padEnd(32)} ${p.password.padEnd(30)} ${p.totpSecret ?? ''}`,
  );
  return [
    '',
    'DEMO MODE — demo accounts below exist only because CONFIDANT_DEMO is on (never in production).',
    `  ${'role'.padEnd(9)} ${'email'.padEnd(32)} ${'password'.padEnd(30)} TOTP secret`,
    ...rows,
    'Staff sign in with a TOTP code: add the secret to an authenticator app, or run',
    '  npx confidant totp <secret>',
    '',
  ].join('\n');
}
