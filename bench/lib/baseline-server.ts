/**
 * The baselines: bare Fastify routes reading with pg. No session, no transaction, no role switch,
 * no row-level security, no audit, no egress check, no response schema.
 *
 *   GET /item/:id                bench:read's target (a): one row by primary key, the row shape of
 *                                GET /api/profile (the table bench_profiles in its own database).
 *   GET /appointments/:patientId bench:booking's target (a), when a second database url is given: the
 *                                same patient's appointments that GET /api/appointments answers with,
 *                                read from the same database as the service (as a superuser, so no
 *                                row-level security): one statement joining clinicians' names and
 *                                "moved to", the same JSON body (upcoming; the 50 most recent others).
 *
 * Same Fastify, same pg, same pool size as the service.
 *
 * argv: <database url> <pool size> [<list database url>]
 */
import Fastify from 'fastify';
import pg from 'pg';
import { reportStartupFailure, serveParent } from './child';
import { profileCommands } from './pg-instrument';

const [url, poolSizeArg, listUrl] = process.argv.slice(2);

/** What a bare implementation of "my appointments" sends: everything in one statement, no RLS, prepared. */
const LIST_SQL = `select a.id, a.patient_id, a.clinician_id, c.display_name as clinician_name, a.starts_at, a.ends_at, a.mode,
    a.reason, a.status, a.cancelled_by, a.rescheduled_from, m.id as rescheduled_to, h.id as consultation_id, a.created_at
  from appointments a
  join accounts c on c.id = a.clinician_id
  left join appointments m on m.rescheduled_from = a.id and m.patient_id = a.patient_id
  left join consultations h on h.appointment_id = a.id and h.status = 'ended'
  where a.patient_id = $1
  order by a.starts_at, a.id`;
const PAST_LIMIT = 50;

async function main() {
  if (!url || !poolSizeArg) throw new Error('usage: baseline-server <database url> <pool size>');
  const profiling = profileCommands();
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
  const listPool = listUrl
    ? new pg.Pool({ connectionString: listUrl, max: Number(poolSizeArg), application_name: 'confidant-bench-baseline-list' })
    : undefined;
  if (listPool) {
    app.get<{ Params: { patientId: string } }>('/appointments/:patientId', async (req) => {
      // A named statement: prepared once per connection, as the service's statements are (a bare
      // app that planned this join on every request would flatter the service).
      const { rows } = await listPool.query({ name: 'bench-list', text: LIST_SQL, values: [req.params.patientId] });
      const now = Date.now();
      const views = rows.map((r) => ({
        id: r.id as string,
        clinician: { id: r.clinician_id as string, displayName: r.clinician_name as string },
        startsAt: (r.starts_at as Date).toISOString(),
        endsAt: (r.ends_at as Date).toISOString(),
        mode: r.mode as string,
        reason: r.reason as string,
        status: r.status as string,
        cancelledBy: r.cancelled_by as string | null,
        rescheduledFrom: r.rescheduled_from as string | null,
        rescheduledTo: r.rescheduled_to as string | null,
        consultationId: r.consultation_id as string | null,
        createdAt: (r.created_at as Date).toISOString(),
      }));
      const upcoming = views.filter((v) => v.status === 'booked' && Date.parse(v.endsAt) > now);
      const past = views.filter((v) => !upcoming.includes(v)).reverse().slice(0, PAST_LIMIT);
      // As the route: the lists and the clinic's booking limit (MAX_FUTURE_BOOKINGS, default 2).
      return { upcoming, past, maxUpcoming: 2 };
    });
  }
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  serveParent(port, profiling, async () => {
    await app.close();
    await pool.end();
    await listPool?.end();
  });
}

main().catch(reportStartupFailure);
