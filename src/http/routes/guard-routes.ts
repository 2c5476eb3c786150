import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { z } from 'zod';
import { Alert, AlertList, AlertParams, DrillReport, LastDrill } from '../../contracts/guard';
import { acknowledgeAlert, listAlerts as list } from '../../modules/guard/alerts';
import { defineRoute } from '../define-route';

/** Where `npm run drill` leaves its last report for the DPO's page (under DATA_DIR). */
export const drillReportFile = (dataDir: string) => path.join(dataDir, 'drill', 'last-report.json');

/** A pushed stream is closed after this long; the page's EventSource reconnects (and so re-checks the session). */
const STREAM_LIFETIME_MS = 2 * 60_000;
const STREAM_PING_MS = 15_000;

export const listAlerts = defineRoute({
  method: 'GET',
  url: '/api/guard/alerts',
  summary: "The breach guard's alerts, unacknowledged first, then newest (DPO)",
  tags: ['guard'],
  access: { permission: 'guard.read' },
  // Never switched off: the DPO needs them most when everything else is.
  response: AlertList,
  egress: 'none',
  handler: async ({ scope }) => {
    const alerts = await list(scope);
    scope.audit({ action: 'guard.alert.list', details: { alerts: alerts.length } });
    return { alerts };
  },
});

export const streamAlerts = defineRoute({
  method: 'GET',
  url: '/api/guard/alerts/stream',
  summary:
    'New alerts as they are raised in any process, pushed as Server-Sent Events (`event: alert`, data: the Alert; `event: resync` when some may have been missed: re-read the list). Closed after two minutes; the browser reconnects and should re-read the list (DPO)',
  tags: ['guard'],
  access: { permission: 'guard.read' },
  response: z.object({}),
  produces: 'text/event-stream',
  egress: 'none',
  handler: async () => ({}),
  send: async (_out, reply, { deps }) => {
    const stream = new PassThrough();
    const write = (text: string) => {
      if (!stream.writableEnded) stream.write(text);
    };
    let stopListening = () => {};
    let ping: NodeJS.Timeout | undefined;
    let lifetime: NodeJS.Timeout | undefined;
    const end = () => {
      clearInterval(ping);
      clearTimeout(lifetime);
      stopListening();
      if (!stream.writableEnded) stream.end();
    };
    stopListening = deps.guard.onAlert(
      (alert) => write(alert ? `event: alert\ndata: ${JSON.stringify(Alert.parse(alert))}\n\n` : 'event: resync\ndata: {}\n\n'),
      // The service is shutting down: the page reconnects to whichever process is left.
      end,
    );
    if (!stream.writableEnded) {
      ping = setInterval(() => write(': ping\n\n'), STREAM_PING_MS);
      lifetime = setTimeout(end, STREAM_LIFETIME_MS);
    }
    reply.raw.once('close', end);
    reply.code(200).header('content-type', 'text/event-stream; charset=utf-8').header('cache-control', 'no-store').header('x-accel-buffering', 'no');
    // Reconnect after a second; say it is open at once (a comment), so the page knows it is live.
    write('retry: 1000\n: open\n\n');
    await reply.send(stream);
  },
});

export const acknowledgeAlertRoute = defineRoute({
  method: 'POST',
  url: '/api/guard/alerts/:id/acknowledge',
  summary: 'The DPO has seen an alert (once; switches nothing back on)',
  tags: ['guard'],
  access: { permission: 'guard.manage' },
  params: AlertParams,
  response: Alert,
  egress: 'none',
  handler: async ({ scope, params }) => acknowledgeAlert(scope, params.id),
});

export const getLastDrill = defineRoute({
  method: 'GET',
  url: '/api/guard/drill',
  summary: "The breach drill's last report (`npm run drill`), if one has been run against this data directory (DPO)",
  tags: ['guard'],
  access: { permission: 'guard.read' },
  response: LastDrill,
  egress: 'none',
  handler: async ({ deps }) => {
    let json: unknown;
    try {
      json = JSON.parse(await readFile(drillReportFile(deps.config.dataDir), 'utf8'));
    } catch {
      // None yet, or one being written: no report rather than an error.
      return { report: null };
    }
    const parsed = DrillReport.safeParse(json);
    return { report: parsed.success ? parsed.data : null };
  },
});
