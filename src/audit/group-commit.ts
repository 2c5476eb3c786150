import type { Database } from '../db';
import { appendAuditEvents, type toAuditRow } from './audit-log';

type Row = ReturnType<typeof toAuditRow>;

interface Pending {
  rows: Row[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit for the audit events of reads: events from concurrent requests are appended
 * in one transaction (one hold of the chain head, one WAL flush), and each request is
 * answered only after the batch holding its events has committed. At low load a batch is
 * one request; under load, whatever arrived while the previous batch was committing.
 */
export class AuditGroupCommit {
  private queue: Pending[] = [];
  private flushing = false;
  private closed = false;

  constructor(
    private readonly db: Database,
    private readonly maxRows = 1000,
    /** Told each batch's time, size and outcome (metrics). */
    private readonly onBatch?: (seconds: number, rows: number, outcome: 'committed' | 'failed') => void,
  ) {}

  /** Resolves once the rows are durable; rejects if they could not be written. */
  append(rows: Row[]): Promise<void> {
    if (rows.length === 0) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error('audit writer is closed'));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ rows, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const batch: Pending[] = [];
        let count = 0;
        while (this.queue.length > 0 && count < this.maxRows) {
          const next = this.queue.shift()!;
          batch.push(next);
          count += next.rows.length;
        }
        const started = performance.now();
        try {
          await this.db.transaction({ kind: 'system', id: null, role: null, sessionId: null, reason: 'audit group commit' }, (tx) =>
            appendAuditEvents(
              tx,
              batch.flatMap((p) => p.rows),
            ),
          );
          this.onBatch?.((performance.now() - started) / 1000, count, 'committed');
          for (const p of batch) p.resolve();
        } catch (err) {
          this.onBatch?.((performance.now() - started) / 1000, count, 'failed');
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  /** Waits for everything queued, then refuses more. */
  async close(): Promise<void> {
    while (this.flushing || this.queue.length > 0) await new Promise((r) => setTimeout(r, 5));
    this.closed = true;
  }
}
