import { z } from 'zod';
import { defineRoute } from '../define-route';

export const getLiveness = defineRoute({
  method: 'GET',
  url: '/api/health/live',
  summary: 'Liveness: the process is running and answering (restart it if not); touches no dependency',
  tags: ['operations'],
  access: { public: true, reason: 'orchestrators probe it; it holds no data' },
  run: 'flow',
  response: z.object({ status: z.literal('ok') }),
  egress: 'none',
  handler: async () => ({ status: 'ok' as const }),
});
