import path from 'node:path';
import { z } from 'zod';
import { compileTrust, type TrustedProxies } from './http/client-address';
import { isValidTimeZone } from './modules/appointments/clinic-time';
import { FAULT_POINT_NAMES, isFaultPoint, type FaultPoint } from './testing/fault-points';

const bool = z
  .enum(['0', '1', 'true', 'false', 'yes', 'no'])
  .transform((v) => v === '1' || v === 'true' || v === 'yes');

const duration = z.coerce.number().int().positive();

const EnvSchema = z.object({
  NODE_ENV: z.string().optional(),
  CONFIDANT_MODE: z.enum(['development', 'production']).optional(),
  CONFIDANT_DEMO: bool.optional(),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().default('127.0.0.1'),
  PUBLIC_URL: z.string().url().optional(),
  DATA_DIR: z.string().default('./data'),
  DATABASE_URL: z.string().optional(),
  DATABASE_OWNER_URL: z.string().optional(),
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(20),
  CONFIDANT_DB_SERVICE_ROLE: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/)
    .default('confidant_app'),
  SESSION_IDLE_MINUTES: duration.default(30),
  SESSION_ABSOLUTE_HOURS: duration.default(12),
  TRUST_PROXY: z
    .string()
    .default('0')
    .transform((v, ctx) => {
      const value = v.trim();
      if (value === '' || value === '0' || value === 'false' || value === 'no') return [];
      if (value === '1' || value === 'true' || value === 'yes' || /^\d+$/.test(value)) {
        ctx.addIssue({
          code: 'custom',
          message:
            'name the load balancers instead (addresses, CIDR ranges or loopback/linklocal/uniquelocal, comma-separated): trusting every hop would let any client choose its own address',
        });
        return z.NEVER;
      }
      const proxies = value.split(',').map((p) => p.trim());
      try {
        compileTrust(proxies);
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be addresses, CIDR ranges or loopback/linklocal/uniquelocal, comma-separated' });
        return z.NEVER;
      }
      return proxies;
    }),
  REGISTRATIONS_PER_ADDRESS: z.coerce.number().int().min(1).max(1_000_000).default(20),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  CLINIC_NAME: z.string().min(1).max(200).default('Confidant Demo Clinic'),
  CLINIC_TIME_ZONE: z.string().default('Europe/London'),
  SLOT_MINUTES: z.coerce.number().int().min(5).max(120).default(10),
  MAX_FUTURE_BOOKINGS: z.coerce.number().int().min(1).max(50).default(2),
  BOOKING_HORIZON_DAYS: z.coerce.number().int().min(1).max(90).default(14),
  RECORDING_MASTER_KEY_FILE: z.string().min(1).optional(),
  RECORDING_MAX_CHUNK_KB: z.coerce.number().int().min(16).max(64 * 1024).default(8 * 1024),
  RECORDING_MAX_MB: z.coerce.number().int().min(1).max(16 * 1024).default(512),
  CONSULTATION_JOIN_EARLY_MINUTES: z.coerce.number().int().min(0).max(24 * 60).default(10),
  CONSULTATION_JOIN_LATE_MINUTES: z.coerce.number().int().min(0).max(24 * 60).default(60),
  ICE_STUN_URLS: z.string().optional(),
  ICE_TURN_URLS: z.string().optional(),
  ICE_TURN_SECRET_FILE: z.string().min(1).optional(),
  ICE_TURN_TTL_SECONDS: z.coerce.number().int().min(60).max(86_400).default(3_600),
  SIGNAL_PING_SECONDS: z.coerce.number().int().min(1).max(300).default(20),
  REQUEST_DEADLINE_MS: z.coerce.number().int().min(100).max(300_000).default(10_000),
  DATABASE_CONNECT_TIMEOUT: z.coerce.number().int().min(0).max(3_600).default(60),
  DATABASE_STATEMENT_TIMEOUT_MS: z.coerce.number().int().min(0).max(3_600_000).default(5_000),
  DATABASE_LOCK_TIMEOUT_MS: z.coerce.number().int().min(0).max(3_600_000).default(2_000),
  DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: z.coerce.number().int().min(0).max(3_600_000).default(15_000),
  DISK_MIN_FREE_MB: z.coerce.number().int().min(0).max(1_000_000).default(100),
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  METRICS_HOST: z.string().default('127.0.0.1'),
  METRICS_TOKEN: z.string().min(16).optional(),
  GUARD_POLL_MS: z.coerce.number().int().min(10).max(10_000).default(100),
  GUARD_PROBE_THRESHOLD: z.coerce.number().int().min(2).max(100_000).default(10),
  GUARD_PROBE_WINDOW_SECONDS: z.coerce.number().int().min(1).max(86_400).default(300),
  GUARD_THROTTLE_MINUTES: z.coerce.number().int().min(1).max(7 * 24 * 60).default(15),
  GUARD_VOLUME_PATIENTS_PER_HOUR: z.coerce.number().int().min(1).max(1_000_000).default(60),
  GUARD_WEBHOOK_URL: z.string().url().refine((u) => /^https?:/.test(u), 'must be an http(s) URL').optional(),
  // Test-only fault points for the breach drill (src/testing/fault-points.ts); refused in production.
  CONFIDANT_FAULTS: z.string().optional(),
});

const iceUrls = (v: string | undefined, scheme: RegExp, name: string): string[] => {
  const urls = (v ?? '').split(',').map((u) => u.trim()).filter(Boolean);
  for (const u of urls) if (!scheme.test(u)) throw new ConfigError(`${name}: "${u}" is not a ${name.includes('TURN') ? 'turn:/turns:' : 'stun:/stuns:'} URL`);
  return urls;
};

export interface Config {
  mode: 'development' | 'production';
  demo: boolean;
  port: number;
  host: string;
  publicUrl: string | undefined;
  secureCookies: boolean;
  dataDir: string;
  database:
    | { kind: 'pglite'; dataDir: string | undefined }
    | {
        kind: 'postgres';
        url: string;
        ownerUrl: string;
        poolSize: number;
        /** Server-side limits on every service connection (ms; 0 = none), and the wait for a pool connection. */
        timeouts: { statementMs: number; lockMs: number; idleInTransactionMs: number; connectMs: number };
      };
  /** How long start-up waits for the database (with backoff) before giving up. */
  databaseConnectTimeoutMs: number;
  /** Past this, a request answers 503 `deadline_exceeded` and anything it had not committed is rolled back. */
  requestDeadlineMs: number;
  /** Readiness reports the disk as full below this much free space under DATA_DIR. */
  diskMinFreeBytes: number;
  /** Prometheus metrics on a separate operator port (off when `port` is undefined). */
  metrics: { port: number | undefined; host: string; token: string | undefined };
  serviceRole: string;
  sessionIdleMs: number;
  sessionAbsoluteMs: number;
  /** Load balancers allowed to say who the client is (X-Forwarded-For); none by default. */
  trustProxy: TrustedProxies;
  /** Patient registrations allowed from one client address per 15 minutes. */
  registrationsPerAddress: number;
  logLevel: string;
  clinicName: string;
  clinic: { timeZone: string; slotMinutes: number; maxFutureBookings: number; horizonDays: number };
  recordings: {
    /** The master key file; in development and demo mode one is created under DATA_DIR if missing. */
    masterKeyFile: string;
    createMasterKeyIfMissing: boolean;
    blobDir: string;
    maxChunkBytes: number;
    maxRecordingBytes: number;
  };
  consultations: {
    joinEarlyMs: number;
    joinLateMs: number;
    /** STUN and TURN servers for browsers; TURN credentials are minted per caller from the shared secret. */
    ice: { stunUrls: string[]; turnUrls: string[]; turnSecretFile: string | undefined; turnTtlSeconds: number };
    /**
     * How often a call page pings its signalling socket (the server tells it in `welcome`). The
     * page reconnects after about two intervals without a word from the server; the server
     * closes a socket it has heard nothing from for 2.5 intervals.
     */
    signalPingMs: number;
  };
  /** Detection over the audit chain (src/modules/guard). */
  guard: {
    /** How often each process looks for audit events past the detection cursor. */
    pollMs: number;
    /** Probing: this many not-found answers on others' existing ids within the window alerts and throttles. */
    probeThreshold: number;
    probeWindowMs: number;
    throttleMs: number;
    /** Unusual volume: one staff principal touching more distinct patients than this in an hour alerts. */
    volumePatientsPerHour: number;
    /** Optional paging webhook: each alert is POSTed here as JSON (identifiers and codes only). */
    webhookUrl: string | undefined;
  };
  /** Fault points switched on for the breach drill (src/testing/fault-points.ts); always empty in production. */
  faults: FaultPoint[];
}

export class ConfigError extends Error {}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigError(`Invalid configuration: ${issues}`);
  }
  const e = parsed.data;
  const mode = e.CONFIDANT_MODE ?? (e.NODE_ENV === 'production' ? 'production' : 'development');
  const demo = mode === 'production' ? false : (e.CONFIDANT_DEMO ?? true);
  if (mode === 'production' && e.CONFIDANT_DEMO === true) {
    throw new ConfigError('CONFIDANT_DEMO cannot be enabled in production mode');
  }
  if (!isValidTimeZone(e.CLINIC_TIME_ZONE)) throw new ConfigError(`CLINIC_TIME_ZONE: unknown time zone "${e.CLINIC_TIME_ZONE}"`);
  if (mode === 'production' && !e.DATABASE_URL) {
    // PGlite's one connection is a superuser: row-level security there guards against our own
    // mistakes but not against a role escape, so production needs a PostgreSQL server.
    throw new ConfigError('production mode needs DATABASE_URL (a PostgreSQL server); the embedded database is for development and demos');
  }
  if (mode === 'production' && !e.RECORDING_MASTER_KEY_FILE) {
    throw new ConfigError('production mode needs RECORDING_MASTER_KEY_FILE (recordings are encrypted under it; see README, "Recordings")');
  }
  const faults = (e.CONFIDANT_FAULTS ?? '').split(',').map((f) => f.trim()).filter(Boolean);
  if (mode === 'production' && faults.length > 0) {
    throw new ConfigError('CONFIDANT_FAULTS is for the breach drill and tests; production mode refuses to start with fault points switched on');
  }
  const unknownFault = faults.find((f) => !isFaultPoint(f));
  if (unknownFault !== undefined) {
    throw new ConfigError(`CONFIDANT_FAULTS: unknown fault point "${unknownFault}" (known: ${FAULT_POINT_NAMES.join(', ')})`);
  }
  const turnUrls = iceUrls(e.ICE_TURN_URLS, /^turns?:/, 'ICE_TURN_URLS');
  if (turnUrls.length > 0 && !e.ICE_TURN_SECRET_FILE) throw new ConfigError('ICE_TURN_URLS needs ICE_TURN_SECRET_FILE (the TURN server\'s shared secret)');
  const dataDir = path.resolve(e.DATA_DIR);
  const loopback = e.METRICS_HOST === '127.0.0.1' || e.METRICS_HOST === '::1' || e.METRICS_HOST === 'localhost';
  if (e.METRICS_PORT !== undefined && !loopback && !e.METRICS_TOKEN) {
    throw new ConfigError('METRICS_HOST is not a loopback address: set METRICS_TOKEN (16+ characters) so that only your scraper can read the metrics');
  }
  return {
    mode,
    demo,
    port: e.PORT,
    host: e.HOST,
    publicUrl: e.PUBLIC_URL,
    secureCookies: e.PUBLIC_URL?.startsWith('https://') ?? false,
    dataDir,
    database: e.DATABASE_URL
      ? {
          kind: 'postgres',
          url: e.DATABASE_URL,
          ownerUrl: e.DATABASE_OWNER_URL ?? e.DATABASE_URL,
          poolSize: e.DATABASE_POOL_SIZE,
          timeouts: {
            statementMs: e.DATABASE_STATEMENT_TIMEOUT_MS,
            lockMs: e.DATABASE_LOCK_TIMEOUT_MS,
            idleInTransactionMs: e.DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS,
            // A request waits for a pool connection no longer than its own deadline.
            connectMs: Math.min(e.REQUEST_DEADLINE_MS, 5_000),
          },
        }
      : { kind: 'pglite', dataDir: path.join(dataDir, 'pglite') },
    databaseConnectTimeoutMs: e.DATABASE_CONNECT_TIMEOUT * 1000,
    requestDeadlineMs: e.REQUEST_DEADLINE_MS,
    diskMinFreeBytes: e.DISK_MIN_FREE_MB * 1024 * 1024,
    metrics: { port: e.METRICS_PORT, host: e.METRICS_HOST, token: e.METRICS_TOKEN },
    serviceRole: e.CONFIDANT_DB_SERVICE_ROLE,
    sessionIdleMs: e.SESSION_IDLE_MINUTES * 60_000,
    sessionAbsoluteMs: e.SESSION_ABSOLUTE_HOURS * 3_600_000,
    trustProxy: e.TRUST_PROXY,
    registrationsPerAddress: e.REGISTRATIONS_PER_ADDRESS,
    logLevel: e.LOG_LEVEL,
    clinicName: e.CLINIC_NAME,
    clinic: {
      timeZone: e.CLINIC_TIME_ZONE,
      slotMinutes: e.SLOT_MINUTES,
      maxFutureBookings: e.MAX_FUTURE_BOOKINGS,
      horizonDays: e.BOOKING_HORIZON_DAYS,
    },
    recordings: {
      masterKeyFile: e.RECORDING_MASTER_KEY_FILE ? path.resolve(e.RECORDING_MASTER_KEY_FILE) : path.join(dataDir, 'keys', 'recording-master.key'),
      createMasterKeyIfMissing: !e.RECORDING_MASTER_KEY_FILE,
      blobDir: path.join(dataDir, 'blobs'),
      maxChunkBytes: e.RECORDING_MAX_CHUNK_KB * 1024,
      maxRecordingBytes: e.RECORDING_MAX_MB * 1024 * 1024,
    },
    consultations: {
      joinEarlyMs: e.CONSULTATION_JOIN_EARLY_MINUTES * 60_000,
      joinLateMs: e.CONSULTATION_JOIN_LATE_MINUTES * 60_000,
      ice: {
        stunUrls: iceUrls(e.ICE_STUN_URLS, /^stuns?:/, 'ICE_STUN_URLS'),
        turnUrls,
        turnSecretFile: e.ICE_TURN_SECRET_FILE ? path.resolve(e.ICE_TURN_SECRET_FILE) : undefined,
        turnTtlSeconds: e.ICE_TURN_TTL_SECONDS,
      },
      signalPingMs: e.SIGNAL_PING_SECONDS * 1000,
    },
    guard: {
      pollMs: e.GUARD_POLL_MS,
      probeThreshold: e.GUARD_PROBE_THRESHOLD,
      probeWindowMs: e.GUARD_PROBE_WINDOW_SECONDS * 1000,
      throttleMs: e.GUARD_THROTTLE_MINUTES * 60_000,
      volumePatientsPerHour: e.GUARD_VOLUME_PATIENTS_PER_HOUR,
      webhookUrl: e.GUARD_WEBHOOK_URL,
    },
    faults: faults.filter(isFaultPoint),
  };
}
