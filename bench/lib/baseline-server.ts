/**
 * Target (a), the baseline: a bare Fastify route that reads one row by primary key with pg.
 * No session, no transaction, no role switch, no row-level security, no audit, no egress check.
 * Same Fastify, same pg, same pool size and the same row shape as GET /api/profile.
 *
 * argv: <database url> <pool size>
 */
import Fastify from 'fastify';
import pg from 'pg';
import { reportStartupFailure, serveParent } from './child';
import { cpuProfiler } from './cpu-profile';
import { instrumentPg } from './pg-instrument';

const [url, poolSizeArg] = process.argv.slice(2);

async function main() {
  if (!url || !poolSizeArg) throw new Error('usage: baseline-server <database url> <pool size>');
  const profiler = instrumentPg();
  const cpu = cpuProfiler();
  // The service's parsers (src/db/database.ts), so both sides decode rows the same way.
  pg.types.setTypeParser(20, (v: string) => Number(v));
  pg.types.setTypeParser(1082, (v: string) => v);
  const pool = new pg.Pool({ connectionString: url, max: Number(poolSizeArg), application_name: 'confidant-bench-baseline' });
  const app = Fastify({ logger: false });
  app.get<{ Params: { id: string } }>('/item/:id', async (req, reply) => {
    const { rows } = await pool.query(
      'select account_id, given_name, family_name, date_of_birth, nhs_number, created_at, email from bench_profiles where account_id = $1',
      [req.params.id],
    );
    const row = rows[0];
    if (!row) return reply.code(404).send({ error: 'not_found' });
    return {
      patientId: row.account_id,
      givenName: row.given_name,
      familyName: row.family_name,
      dateOfBirth: row.date_of_birth,
      nhsNumber: row.nhs_number,
      email: row.email,
      createdAt: (row.created_at as Date).toISOString(),
    };
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  serveParent(
    port,
    {
      'profile-start': async () => {
        await cpu.start();
        profiler.start();
      },
      'profile-stop': async () => ({ pg: profiler.stop(), cpu: await cpu.stop() }),
    },
    async () => {
      await app.close();
      await pool.end();
    },
  );
}

main().catch(reportStartupFailure);
