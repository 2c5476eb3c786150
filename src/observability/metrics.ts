import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ErrorCode } from '../errors';

/**
 * Prometheus metrics for one service instance. Each call makes its own Registry: tests start
 * several services in one process, and prom-client's global registry refuses a second metric
 * of the same name.
 *
 * Every label takes values from a small fixed set (route patterns, SQLSTATEs, error codes):
 * a label fed from a URL, an id or a message would grow without bound and could carry patient
 * data to a system that is not meant to hold any.
 *
 * Node's process metrics keep prom-client's standard names (`process_*`, `nodejs_*`, no
 * `confidant_` prefix) so that stock Node.js dashboards and alerts work as they are; Prometheus's
 * `job` label already says whose process it is. Our own metrics all start with `confidant_`.
 */

export interface PoolSnapshot {
  /** Connections open (checked out or idle): pg.Pool `totalCount`. */
  total: number;
  /** Open and not checked out: pg.Pool `idleCount`. */
  idle: number;
  /** Callers queued for a connection: pg.Pool `waitingCount`. */
  waiting: number;
  /** The pool's `max`, so an alert can compare in-use with it without knowing the configuration. */
  max?: number;
}

export type OpenCountGauge = 'replayStreamsOpen' | 'signallingSocketsOpen';

export type AuditCommitOutcome = 'committed' | 'failed';

export interface CreateMetricsOptions {
  /**
   * Node's process metrics (CPU, memory, event-loop delay, GC). Each collection starts an
   * event-loop monitor and a GC observer that live as long as the process, so a service that
   * serves no metrics, or a test that starts many services, can leave them off.
   */
  processMetrics?: boolean;
}

export type Metrics = ReturnType<typeof createMetrics>;

const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

// Node's system errors that say something different to an operator: refused (the server is
// down), reset/timeout (the network or a proxy), not found (DNS), disk full (PGlite's files).
// Any other system error is 'other'.
const SYSTEM_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
  'ENOSPC',
  'EDQUOT',
]);

// node-postgres's own words (it sets no code on these), and the pipeline's for a lease whose
// connection was dropped under it.
const CONNECT_TIMEOUT = ['Connection terminated due to connection timeout', 'timeout exceeded when trying to connect'];
const CONNECTION_LOST = [
  'Connection terminated',
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
  'the transaction has ended: its connection was released',
];

const SQLSTATE = /^[0-9A-Z]{5}$/;

export function createMetrics(options: CreateMetricsOptions = {}) {
  const registry = new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const httpRequestDuration = new Histogram({
    name: 'confidant_http_request_duration_seconds',
    help: 'Time from request to response, by route pattern and status.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });

  const http503 = new Counter({
    name: 'confidant_http_503_total',
    help: 'Answers 503 by error code: a deadline, a feature switched off, a dependency missing.',
    labelNames: ['code'] as const,
    registers,
  });

  const deadlineExceeded = new Counter({
    name: 'confidant_request_deadline_exceeded_total',
    help: 'Requests rolled back and answered 503 because they ran past their deadline.',
    labelNames: ['route'] as const,
    registers,
  });

  const poolSources = new Set<() => PoolSnapshot>();
  const readPools = () => {
    const sum = { total: 0, idle: 0, waiting: 0, max: 0, anyMax: false };
    for (const read of poolSources) {
      const s = read();
      sum.total += s.total;
      sum.idle += s.idle;
      sum.waiting += s.waiting;
      if (s.max !== undefined) {
        sum.max += s.max;
        sum.anyMax = true;
      }
    }
    return sum;
  };

  const dbPoolConnections = new Gauge({
    name: 'confidant_db_pool_connections',
    help: 'Service database connections by state (in_use: checked out by a transaction or a multiplexed read).',
    labelNames: ['state'] as const,
    registers,
    collect() {
      if (poolSources.size === 0) return;
      const s = readPools();
      this.set({ state: 'in_use' }, Math.max(0, s.total - s.idle));
      this.set({ state: 'idle' }, s.idle);
    },
  });

  const dbPoolWaiting = new Gauge({
    name: 'confidant_db_pool_waiting',
    help: 'Callers queued for a service database connection.',
    registers,
    collect() {
      if (poolSources.size === 0) return;
      this.set(readPools().waiting);
    },
  });

  const dbPoolMax = new Gauge({
    name: 'confidant_db_pool_max',
    help: 'Largest number of service database connections the pool may open.',
    registers,
    collect() {
      if (poolSources.size === 0) return;
      const s = readPools();
      if (s.anyMax) this.set(s.max);
    },
  });

  const dbErrors = new Counter({
    name: 'confidant_db_errors_total',
    help: 'Database errors by SQLSTATE, else Node system error code, connection_lost, connect_timeout or other.',
    labelNames: ['sqlstate'] as const,
    registers,
  });

  const auditGroupCommit = new Histogram({
    name: 'confidant_audit_group_commit_seconds',
    help: 'Time to commit one batch of read audit events; reads wait for it before they answer.',
    labelNames: ['outcome'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  });

  const auditGroupCommitRows = new Histogram({
    name: 'confidant_audit_group_commit_rows',
    help: 'Audit events per group-commit batch (how much concurrency the batching absorbs).',
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
    registers,
  });

  const openCountSources: Record<OpenCountGauge, Set<() => number>> = {
    replayStreamsOpen: new Set(),
    signallingSocketsOpen: new Set(),
  };
  // With a callback registered the gauge is read at scrape time and any inc/dec is overwritten;
  // without one it is whatever inc/dec left.
  const sumOf = (sources: Set<() => number>) => {
    let n = 0;
    for (const read of sources) n += read();
    return n;
  };

  const replayStreamsOpen = new Gauge({
    name: 'confidant_replay_streams_open',
    help: 'Recording replay responses being streamed now.',
    registers,
    collect() {
      if (openCountSources.replayStreamsOpen.size > 0) this.set(sumOf(openCountSources.replayStreamsOpen));
    },
  });

  const signallingSocketsOpen = new Gauge({
    name: 'confidant_signalling_sockets_open',
    help: 'Call signalling WebSockets open now.',
    registers,
    collect() {
      if (openCountSources.signallingSocketsOpen.size > 0) this.set(sumOf(openCountSources.signallingSocketsOpen));
    },
  });

  return {
    registry,
    /** The Prometheus text exposition of every metric, and the content type to send it with. */
    render: async () => ({ body: await registry.metrics(), contentType: registry.contentType }),

    httpRequestDuration,
    http503,
    deadlineExceeded,
    dbPoolConnections,
    dbPoolWaiting,
    dbPoolMax,
    dbErrors,
    auditGroupCommit,
    auditGroupCommitRows,
    replayStreamsOpen,
    signallingSocketsOpen,

    /** `route` is the route's pattern (Fastify's `req.routeOptions.url`), undefined when none matched. */
    observeRequest(method: string, route: string | undefined, status: number, seconds: number): void {
      httpRequestDuration.observe({ method: methodLabel(method), route: routeLabel(route), status: statusLabel(status) }, seconds);
    },

    countUnavailable(code: ErrorCode): void {
      http503.inc({ code });
    },

    countDeadlineExceeded(route: string | undefined): void {
      deadlineExceeded.inc({ route: routeLabel(route) });
    },

    /** Read at every scrape; returns a function that stops reading it (call it when the pool ends). */
    observePool(read: () => PoolSnapshot): () => void {
      poolSources.add(read);
      return () => void poolSources.delete(read);
    },

    countDbError(err: unknown): void {
      dbErrors.inc({ sqlstate: dbErrorLabel(err) });
    },

    observeAuditCommit(seconds: number, rows: number, outcome: AuditCommitOutcome): void {
      auditGroupCommit.observe({ outcome }, seconds);
      auditGroupCommitRows.observe(rows);
    },

    /** Read at every scrape (several sources are added up); returns a function that stops reading it. */
    observeGauge(name: OpenCountGauge, read: () => number): () => void {
      const sources = openCountSources[name];
      sources.add(read);
      return () => void sources.delete(read);
    },
  };
}

/**
 * The `sqlstate` label for a database failure: the SQLSTATE PostgreSQL (or PGlite) sent, else
 * Node's system error code, else what node-postgres says in words about a connection it lost
 * or could not open in time, else 'other'. Wrapped errors are read through `cause`, and an
 * AggregateError (a connect to both ::1 and 127.0.0.1) by what its errors share.
 */
export function dbErrorLabel(err: unknown, depth = 0): string {
  if (typeof err !== 'object' || err === null || depth > 3) return 'other';
  const { code, message, syscall, errno, errors, cause } = err as Record<string, unknown>;
  // Node's system errors carry `syscall`/a numeric `errno`, and some of their codes (EPIPE,
  // EPERM) are five capitals too, so they must not be read as SQLSTATEs.
  const systemError = typeof syscall === 'string' || typeof errno === 'number';
  if (typeof code === 'string') {
    if (SYSTEM_CODES.has(code)) return code;
    if (!systemError && SQLSTATE.test(code)) return code;
  }
  if (typeof message === 'string') {
    if (CONNECT_TIMEOUT.some((m) => message.startsWith(m))) return 'connect_timeout';
    if (CONNECTION_LOST.some((m) => message.startsWith(m))) return 'connection_lost';
  }
  if (Array.isArray(errors) && errors.length > 0) {
    const labels = new Set(errors.map((e) => dbErrorLabel(e, depth + 1)));
    if (labels.size === 1) return [...labels][0]!;
  }
  return cause === undefined ? 'other' : dbErrorLabel(cause, depth + 1);
}

function methodLabel(method: string): string {
  const m = method.toUpperCase();
  return HTTP_METHODS.has(m) ? m : 'other';
}

function routeLabel(route: string | undefined): string {
  return route === undefined || route === '' ? 'unmatched' : route;
}

function statusLabel(status: number): string {
  return Number.isInteger(status) && status >= 100 && status <= 599 ? String(status) : 'other';
}
