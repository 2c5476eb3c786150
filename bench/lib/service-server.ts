/**
 * Target (b), the real service: createService (src/server.ts) exactly as `confidant serve`
 * builds it, on PostgreSQL, connecting as the service role; migrations run as the owner.
 *
 * argv: <service-role url> <owner url> <pool size> [<data dir>]
 *
 * The data directory (default ./data) holds the master key that seals authenticator secrets:
 * processes that share a database and sign staff in must share it too (bench:detect).
 */
import { loadConfig } from '../../src/config';
import { createService } from '../../src/server';
import { reportStartupFailure, serveParent } from './child';
import { profileCommands } from './pg-instrument';

const [url, ownerUrl, poolSize, dataDir] = process.argv.slice(2);

async function main() {
  if (!url || !ownerUrl || !poolSize) throw new Error('usage: service-server <service url> <owner url> <pool size> [<data dir>]');
  // Installed before the service opens its pool (it is a no-op until profile-start).
  const profiling = profileCommands();
  const config = loadConfig({
    DATABASE_URL: url,
    DATABASE_OWNER_URL: ownerUrl,
    DATABASE_POOL_SIZE: poolSize,
    ...(dataDir ? { DATA_DIR: dataDir } : {}),
    CONFIDANT_DEMO: '0',
    REGISTRATIONS_PER_ADDRESS: '1000000',
    LOG_LEVEL: 'silent',
    HOST: '127.0.0.1',
    PORT: '0',
  });
  const service = await createService(config);
  await service.built.app.listen({ port: 0, host: '127.0.0.1' });
  const address = service.built.app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  serveParent(port, profiling, () => service.close());
}

main().catch(reportStartupFailure);
