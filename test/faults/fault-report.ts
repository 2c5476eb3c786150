import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { LoadSummary } from './load';

/** One fault's measurements, as printed for the lead's notes. Times are epoch ms. */
export interface FaultRow {
  fault: string;
  faultAt: number;
  /** Readiness first answered non-200. */
  redAt?: number | undefined;
  /** The database accepted connections again (the fault's own measure; see each fault). */
  acceptingAt?: number | undefined;
  greenAt?: number | undefined;
  summary: LoadSummary;
  maxProbeLatencyMs?: number;
  notes: string[];
}

const rel = (t: number | undefined, from: number) => (t === undefined ? '—' : `+${((t - from) / 1000).toFixed(2)}s`);

export function recoveryMs(row: FaultRow): number | undefined {
  return row.greenAt !== undefined && row.acceptingAt !== undefined ? row.greenAt - row.acceptingAt : undefined;
}

function answers(s: LoadSummary): string {
  const order = (k: string) => (k.startsWith('2') ? 0 : k.startsWith('4') ? 1 : k.startsWith('503') ? 2 : 3);
  return Object.entries(s.byStatus)
    .sort(([a], [b]) => order(a) - order(b) || a.localeCompare(b))
    .map(([k, n]) => `${k}: ${n}`)
    .join(', ');
}

/** A compact Markdown table (times relative to each fault's start). */
export function faultTable(rows: FaultRow[]): string {
  const head = '| fault | red at | accepting at | green at | recovery | requests (status code: n) | writes ack/ref/aband/unknown (unresolved) | max latency |';
  const line = '|---|---|---|---|---|---|---|---|';
  const body = rows.map((r) => {
    const rec = recoveryMs(r);
    const w = r.summary.writes;
    return `| ${r.fault} | ${rel(r.redAt, r.faultAt)} | ${rel(r.acceptingAt, r.faultAt)} | ${rel(r.greenAt, r.faultAt)} | ${rec === undefined ? 'never' : `${rec} ms`} | ${r.summary.requests}: ${answers(r.summary)} | ${w.acknowledged}/${w.refused}/${w.abandoned}/${w.unknown} (${r.summary.unresolved}) | ${r.summary.maxLatencyMs} ms (${r.summary.maxLatencyOf}) |`;
  });
  const notes = rows.flatMap((r) => r.notes.map((n) => `- ${r.fault}: ${n}`));
  return [head, line, ...body, ...(notes.length ? ['', ...notes] : [])].join('\n');
}

/** Keeps the full measurements next to the test cache (gitignored) for later reading. */
export function saveReport(name: string, data: unknown): string {
  const dir = path.resolve('.test-cache/faults');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(data, null, 1));
  return file;
}
