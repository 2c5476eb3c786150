import { z } from 'zod';
import { AppError } from '../../errors';
import { defineRoute } from '../define-route';

const CheckState = z.enum(['ok', 'unavailable', 'timeout', 'behind', 'not_writable', 'full']);

const WHAT = {
  database: 'the database',
  migrations: 'the database schema',
  dataDir: 'the data directory',
  blobStore: 'the recording store',
  disk: 'free disk space',
} as const;

export const getReadiness = defineRoute({
  method: 'GET',
  url: '/api/health/ready',
  summary:
    'Readiness: the database answers within 1 s with every migration applied, the data directory and the recording store take a write, and the disk is not full. 503 `not_ready` names each check that failed (in details)',
  tags: ['operations'],
  access: { public: true, reason: 'orchestrators and load balancers probe it; it names checks, never data' },
  run: 'flow',
  response: z.object({
    status: z.literal('ready'),
    checks: z.object({ database: CheckState, migrations: CheckState, dataDir: CheckState, blobStore: CheckState, disk: CheckState }),
  }),
  egress: 'none',
  handler: async ({ deps }) => {
    const report = await deps.readiness.check();
    if (!report.ready) {
      const failing = (Object.keys(report.checks) as (keyof typeof WHAT)[]).filter((k) => report.checks[k] !== 'ok');
      throw new AppError('not_ready', `Not ready: ${failing.map((k) => `${WHAT[k]} (${report.checks[k].replace('_', ' ')})`).join(', ')}.`, {
        details: { ...report.checks },
        headers: { 'retry-after': '1' },
      });
    }
    return { status: 'ready' as const, checks: report.checks };
  },
});
