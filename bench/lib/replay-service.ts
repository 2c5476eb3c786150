/**
 * bench:replay, target (c): the real service (createService, exactly as `confidant serve` builds
 * it) on PostgreSQL as the service role, with its recordings under a temporary DATA_DIR and a
 * join window wide enough that a consultation booked a few minutes ahead can be joined at once.
 *
 * argv: <service-role url> <owner url> <pool size> <data dir>
 *
 * Commands (besides child.ts's usage / usage-reset / stop):
 *   create-staff { email, displayName, role, password, mfaSecret } → { id }  (operator path, as
 *                `confidant users add` and test/fixtures.ts newStaff do it)
 *   profile-start / profile-stop → { pg, cpu }  (query counting and V8 sampling, as service-server.ts)
 *   gc → cumulative scavenges / mark-compacts and their pauses (replay-gc.ts); memory → process.memoryUsage();
 *   loop-delay-reset / loop-delay → the event loop's delay since the reset (replay-gc.ts)
 *   timeline-reset / timeline → where requests' time went since the reset (replay-timeline.ts), with
 *                the route's own stages: its transactions, the audit group commits, opening the
 *                sealed file and the segment opener's jobs (timed by wrapping the service's own
 *                objects from outside; nothing in src/ knows)
 */
import { loadConfig } from '../../src/config';
import { createStaffAccount, type StaffRoleName } from '../../src/modules/identity/staff-accounts';
import { createService } from '../../src/server';
import { reportStartupFailure, serveParent } from './child';
import { gcCounters, loopDelay } from './replay-gc';
import { profileCommands } from './pg-instrument';
import { requestTimeline } from './replay-timeline';
import { sharedOpener } from '../../src/modules/recordings/segment-opener';

const [url, ownerUrl, poolSize, dataDir] = process.argv.slice(2);

async function main() {
  const gc = gcCounters();
  const loop = loopDelay();
  if (!url || !ownerUrl || !poolSize || !dataDir) throw new Error('usage: replay-service <service url> <owner url> <pool size> <data dir>');
  const profiling = profileCommands();
  const config = loadConfig({
    DATABASE_URL: url,
    DATABASE_OWNER_URL: ownerUrl,
    DATABASE_POOL_SIZE: poolSize,
    DATA_DIR: dataDir,
    CONFIDANT_DEMO: '0',
    REGISTRATIONS_PER_ADDRESS: '1000000',
    CONSULTATION_JOIN_EARLY_MINUTES: '1440',
    LOG_LEVEL: 'silent',
    HOST: '127.0.0.1',
    PORT: '0',
  });
  // No periodic sweep: nothing here is ever left unfinished, and the bench finishes its recording itself.
  const service = await createService(config, { sweepRecordings: false });
  await service.built.app.listen({ port: 0, host: '127.0.0.1' });
  const address = service.built.app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const timeline = requestTimeline(service.built.app.server, { tagRequests: true });
  const { db, deps } = service;
  // A request's own steps: its scoped transaction begins, and it ends with the audit events durable.
  const run = deps.scopes.run.bind(deps.scopes);
  deps.scopes.run = ((principal, request, fn, o) => {
    // The session lookup on a cache miss runs first, as anonymous: not the route's transaction.
    if (principal.kind === 'anonymous') return run(principal, request, fn, o);
    timeline.mark(request.userAgent, 'transaction');
    const p = run(principal, request, fn, o);
    p.then(
      () => timeline.mark(request.userAgent, 'audit durable'),
      () => undefined,
    );
    return p;
  }) as typeof deps.scopes.run;
  const transaction = db.transaction.bind(db);
  db.transaction = ((principal, fn, o) =>
    timeline.track(
      principal.reason === 'audit group commit' ? 'audit group commit' : o?.readOnly ? 'read transaction' : 'write transaction',
      performance.now(),
      transaction(principal, fn, o),
    )) as typeof db.transaction;
  const open = deps.recordings.blobs.open.bind(deps.recordings.blobs);
  deps.recordings.blobs.open = (name) => timeline.track('sealed file opened', performance.now(), open(name));
  const opener = sharedOpener();
  const openJob = opener.open.bind(opener);
  opener.open = (job) => timeline.track('segment job (queued, read, opened)', performance.now(), openJob(job));
  serveParent(
    port,
    {
      'create-staff': async (arg) => {
        const { mfaSecret, ...a } = arg as { email: string; displayName: string; role: StaffRoleName; password: string; mfaSecret: string };
        return service.deps.scopes.system('bench: users add', { requestId: `bench-${process.pid}`, clientIp: null, userAgent: 'confidant-bench' }, (scope) =>
          createStaffAccount(scope, { ...a, mfa: { secret: mfaSecret, box: service.deps.identity.mfaSecrets } }),
        );
      },
      ...profiling,
      memory: () => process.memoryUsage(),
      gc: () => gc(),
      'loop-delay-reset': () => loop.reset(),
      'loop-delay': () => loop.read(),
      'timeline-reset': () => timeline.reset(),
      timeline: () => timeline.read(),
    },
    () => service.close(),
  );
}

main().catch(reportStartupFailure);
