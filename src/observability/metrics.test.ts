import { describe, expect, it } from 'vitest';
import { createMetrics, dbErrorLabel } from './metrics';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * A strict reader of the Prometheus text format (0.0.4): every line is a HELP, a TYPE or a
 * sample, and every sample belongs to a family declared by a TYPE line before it.
 */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const name = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const labelRe = new RegExp(`^(${name})="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"(,|$)`);
  const sampleRe = new RegExp(`^(${name})(?:\\{(.*)\\})? (\\S+)(?: -?\\d+)?$`);
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = new RegExp(`^# (HELP|TYPE) (${name}) (.*)$`).exec(line);
    if (meta) {
      if (meta[1] === 'TYPE') {
        expect(['counter', 'gauge', 'histogram', 'summary', 'untyped']).toContain(meta[3]);
        types.set(meta[2]!, meta[3]!);
      }
      continue;
    }
    const m = sampleRe.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    let rest = m[2] ?? '';
    while (rest !== '') {
      const l = labelRe.exec(rest);
      if (!l) throw new Error(`bad labels in: ${line}`);
      labels[l[1]!] = l[2]!;
      rest = rest.slice(l[0].length);
    }
    // prom-client writes NaN as "Nan" (the event-loop lag before its first sample); Prometheus
    // reads values with Go's ParseFloat, which takes NaN and Inf in any case.
    const raw = m[3]!.toLowerCase();
    const value = raw === 'nan' ? NaN : raw === '+inf' || raw === 'inf' ? Infinity : raw === '-inf' ? -Infinity : Number(raw);
    if (Number.isNaN(value) && raw !== 'nan') throw new Error(`bad value in: ${line}`);
    const family = m[1]!.replace(/_(bucket|sum|count|total|created)$/, '');
    if (!types.has(m[1]!) && !types.has(family)) throw new Error(`sample before its TYPE: ${line}`);
    samples.push({ name: m[1]!, labels, value });
  }
  return samples;
}

function find(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

async function scrape(metrics: ReturnType<typeof createMetrics>): Promise<Sample[]> {
  return parseExposition((await metrics.render()).body);
}

describe('createMetrics', () => {
  it('renders the Prometheus text format with the values observed', async () => {
    const metrics = createMetrics();
    metrics.observeRequest('GET', '/api/appointments/:id', 200, 0.03);
    metrics.observeRequest('GET', '/api/appointments/:id', 200, 0.2);
    metrics.observeRequest('POST', '/api/appointments', 503, 12);
    metrics.countUnavailable('unavailable');
    metrics.countDeadlineExceeded('/api/appointments');
    metrics.observeAuditCommit(0.004, 3, 'committed');
    metrics.observeAuditCommit(0.3, 700, 'failed');

    const { contentType } = await metrics.render();
    expect(contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
    const s = await scrape(metrics);

    const get = { method: 'GET', route: '/api/appointments/:id', status: '200' };
    expect(find(s, 'confidant_http_request_duration_seconds_count', get)).toBe(2);
    expect(find(s, 'confidant_http_request_duration_seconds_sum', get)).toBeCloseTo(0.23);
    expect(find(s, 'confidant_http_request_duration_seconds_bucket', { ...get, le: '0.025' })).toBe(0);
    expect(find(s, 'confidant_http_request_duration_seconds_bucket', { ...get, le: '0.05' })).toBe(1);
    expect(find(s, 'confidant_http_request_duration_seconds_bucket', { ...get, le: '0.25' })).toBe(2);
    const post = { method: 'POST', route: '/api/appointments', status: '503' };
    expect(find(s, 'confidant_http_request_duration_seconds_bucket', { ...post, le: '10' })).toBe(0);
    expect(find(s, 'confidant_http_request_duration_seconds_bucket', { ...post, le: '+Inf' })).toBe(1);

    expect(find(s, 'confidant_http_503_total', { code: 'unavailable' })).toBe(1);
    expect(find(s, 'confidant_request_deadline_exceeded_total', { route: '/api/appointments' })).toBe(1);

    expect(find(s, 'confidant_audit_group_commit_seconds_count', { outcome: 'committed' })).toBe(1);
    expect(find(s, 'confidant_audit_group_commit_seconds_bucket', { outcome: 'committed', le: '0.005' })).toBe(1);
    expect(find(s, 'confidant_audit_group_commit_seconds_bucket', { outcome: 'failed', le: '0.25' })).toBe(0);
    expect(find(s, 'confidant_audit_group_commit_rows_sum')).toBe(703);
    expect(find(s, 'confidant_audit_group_commit_rows_bucket', { le: '5' })).toBe(1);

    // Node's process metrics, under their standard names.
    expect(find(s, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(s.some((x) => x.name === 'nodejs_eventloop_lag_seconds')).toBe(true);
  });

  it('keeps request labels bounded: no route is "unmatched", odd methods and statuses are "other"', async () => {
    const metrics = createMetrics({ processMetrics: false });
    metrics.observeRequest('get', undefined, 404, 0.001);
    metrics.observeRequest('PROPFIND', '/api/session', 200, 0.001);
    metrics.observeRequest('GET', '/api/session', 1000, 0.001);
    metrics.countDeadlineExceeded(undefined);
    const s = await scrape(metrics);
    expect(find(s, 'confidant_http_request_duration_seconds_count', { method: 'GET', route: 'unmatched', status: '404' })).toBe(1);
    expect(find(s, 'confidant_http_request_duration_seconds_count', { method: 'other', route: '/api/session', status: '200' })).toBe(1);
    expect(find(s, 'confidant_http_request_duration_seconds_count', { method: 'GET', route: '/api/session', status: 'other' })).toBe(1);
    expect(find(s, 'confidant_request_deadline_exceeded_total', { route: 'unmatched' })).toBe(1);
  });

  it('reads the pool at scrape time, and stops once the source is removed', async () => {
    const metrics = createMetrics({ processMetrics: false });
    let pool = { total: 5, idle: 2, waiting: 0, max: 20 };
    let reads = 0;
    const stop = metrics.observePool(() => {
      reads++;
      return pool;
    });
    expect(reads).toBe(0);

    let s = await scrape(metrics);
    expect(reads).toBeGreaterThan(0);
    expect(find(s, 'confidant_db_pool_connections', { state: 'in_use' })).toBe(3);
    expect(find(s, 'confidant_db_pool_connections', { state: 'idle' })).toBe(2);
    expect(find(s, 'confidant_db_pool_waiting')).toBe(0);
    expect(find(s, 'confidant_db_pool_max')).toBe(20);

    pool = { total: 20, idle: 0, waiting: 7, max: 20 };
    s = await scrape(metrics);
    expect(find(s, 'confidant_db_pool_connections', { state: 'in_use' })).toBe(20);
    expect(find(s, 'confidant_db_pool_connections', { state: 'idle' })).toBe(0);
    expect(find(s, 'confidant_db_pool_waiting')).toBe(7);

    stop();
    const before = reads;
    await scrape(metrics);
    expect(reads).toBe(before);
  });

  it('reads open-count gauges from callbacks, or keeps what inc/dec left', async () => {
    const metrics = createMetrics({ processMetrics: false });
    const sockets = new Set(['a', 'b']);
    const stop = metrics.observeGauge('signallingSocketsOpen', () => sockets.size);
    metrics.replayStreamsOpen.inc();
    metrics.replayStreamsOpen.inc();
    metrics.replayStreamsOpen.dec();

    let s = await scrape(metrics);
    expect(find(s, 'confidant_signalling_sockets_open')).toBe(2);
    expect(find(s, 'confidant_replay_streams_open')).toBe(1);

    sockets.add('c');
    s = await scrape(metrics);
    expect(find(s, 'confidant_signalling_sockets_open')).toBe(3);

    stop();
    sockets.clear();
    s = await scrape(metrics);
    expect(find(s, 'confidant_signalling_sockets_open')).toBe(3);
  });

  it('counts database errors under a bounded label', async () => {
    const metrics = createMetrics({ processMetrics: false });
    metrics.countDbError(Object.assign(new Error('could not serialize access'), { code: '40001' }));
    metrics.countDbError(Object.assign(new Error('could not serialize access'), { code: '40001' }));
    metrics.countDbError(new Error('Connection terminated unexpectedly'));
    const s = await scrape(metrics);
    expect(find(s, 'confidant_db_errors_total', { sqlstate: '40001' })).toBe(2);
    expect(find(s, 'confidant_db_errors_total', { sqlstate: 'connection_lost' })).toBe(1);
  });

  it('two instances in one process do not clash', async () => {
    const a = createMetrics();
    const b = createMetrics();
    a.observeRequest('GET', '/api/session', 200, 0.01);
    a.countDbError({ code: '57P01' });
    const sa = await scrape(a);
    const sb = await scrape(b);
    expect(find(sa, 'confidant_http_request_duration_seconds_count', { route: '/api/session' })).toBe(1);
    expect(find(sb, 'confidant_http_request_duration_seconds_count', { route: '/api/session' })).toBeUndefined();
    expect(find(sa, 'confidant_db_errors_total', { sqlstate: '57P01' })).toBe(1);
    expect(find(sb, 'confidant_db_errors_total', { sqlstate: '57P01' })).toBeUndefined();
    expect(find(sb, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
  });
});

describe('dbErrorLabel', () => {
  const cases: [string, unknown, string][] = [
    ['a SQLSTATE', { code: '23505', severity: 'ERROR', message: 'duplicate key value violates unique constraint "x"' }, '23505'],
    ['an admin shutdown (pg_terminate_backend)', { code: '57P01' }, '57P01'],
    ['a statement timeout', { code: '57014' }, '57014'],
    ['a refused connection', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED', errno: -111, syscall: 'connect' }), 'ECONNREFUSED'],
    ['a reset connection', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET', errno: -104, syscall: 'read' }), 'ECONNRESET'],
    ['DNS', { code: 'ENOTFOUND', syscall: 'getaddrinfo' }, 'ENOTFOUND'],
    ['a system error whose code looks like a SQLSTATE', { code: 'EPERM', errno: -1, syscall: 'open' }, 'other'],
    ['an unlisted system error', { code: 'EMFILE', errno: -24, syscall: 'socket' }, 'other'],
    ['a Node internal code', { code: 'ERR_INVALID_ARG_TYPE' }, 'other'],
    ['a lowercase five-letter code', { code: 'abcde' }, 'other'],
    ['pg losing its connection', new Error('Connection terminated unexpectedly'), 'connection_lost'],
    ['pg ending a client', new Error('Connection terminated'), 'connection_lost'],
    ['pg connect timeout', new Error('Connection terminated due to connection timeout'), 'connect_timeout'],
    ['pg-pool checkout timeout', new Error('timeout exceeded when trying to connect'), 'connect_timeout'],
    ['a full disk (PGlite)', { code: 'ENOSPC', errno: -28, syscall: 'write' }, 'ENOSPC'],
    ['pg refusing a broken client', new Error('Client has encountered a connection error and is not queryable'), 'connection_lost'],
    ['a connect to ::1 and 127.0.0.1, both refused', new AggregateError([{ code: 'ECONNREFUSED', syscall: 'connect' }, { code: 'ECONNREFUSED', syscall: 'connect' }]), 'ECONNREFUSED'],
    ['an AggregateError of different failures', new AggregateError([{ code: 'ECONNREFUSED' }, { code: 'EHOSTUNREACH' }]), 'other'],
    ['a lost COMMIT, read through its cause', Object.assign(new Error('the database connection was lost while committing'), { name: 'CommitOutcomeUnknown', cause: { code: '57P01' } }), '57P01'],
    ['a wrapped SQLSTATE', new Error('query failed', { cause: { code: '40P01' } }), '40P01'],
    ['a plain error', new Error('something else'), 'other'],
    ['a string', 'boom', 'other'],
    ['null', null, 'other'],
    ['undefined', undefined, 'other'],
    ['a cause cycle', (() => { const e: { cause?: unknown } = {}; e.cause = e; return e; })(), 'other'],
  ];
  it.each(cases)('%s', (_what, err, label) => {
    expect(dbErrorLabel(err)).toBe(label);
  });
});
