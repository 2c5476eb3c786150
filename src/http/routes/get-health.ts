import { z } from 'zod';
import { sql } from '../../db';
import { defineRoute } from '../define-route';

export const getHealth = defineRoute({
  method: 'GET',
  url: '/api/health',
  summary: 'Liveness and database reachability',
  tags: ['operations'],
  access: { public: true, reason: 'load balancers and operators probe it; it holds no data' },
  response: z.object({ status: z.literal('ok'), database: z.enum(['pglite', 'postgres']) }),
  egress: 'none',
  handler: async ({ scope, deps }) => {
    await sql`select 1`.execute(scope.tx);
    return { status: 'ok' as const, database: deps.databaseKind };
  },
});
