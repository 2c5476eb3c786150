import { randomUUID } from 'node:crypto';
import {
  ErrorCode,
  NOOP_PROVIDER,
  OpenFeature,
  OpenFeatureEventEmitter,
  ProviderEvents,
  StandardResolutionReasons,
  type Client,
  type JsonValue,
  type Provider,
  type ResolutionDetails,
} from '@openfeature/server-sdk';
import type { Scopes } from '../../access/scope';
import { system } from '../../access/principal';
import { noRequest } from '../../access/request-context';
import { readFlags, type FeatureName } from './features';

interface FlagLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/**
 * The OpenFeature provider behind every kill switch: answers from the in-memory flags that
 * FeatureFlags keeps current, never from the database, so an evaluation costs no round trip.
 * A flag it does not know resolves to the caller's default (ours is "off": fail closed).
 */
export class ConfidantFlagProvider implements Provider {
  readonly metadata = { name: 'confidant-database' } as const;
  readonly runsOn = 'server' as const;
  readonly events = new OpenFeatureEventEmitter();

  constructor(private readonly flags: ReadonlyMap<string, boolean>) {}

  async resolveBooleanEvaluation(flagKey: string, defaultValue: boolean): Promise<ResolutionDetails<boolean>> {
    const value = this.flags.get(flagKey);
    if (value === undefined) return { value: defaultValue, reason: StandardResolutionReasons.ERROR, errorCode: ErrorCode.FLAG_NOT_FOUND };
    return { value, variant: value ? 'on' : 'off', reason: value ? StandardResolutionReasons.STATIC : StandardResolutionReasons.DISABLED };
  }

  async resolveStringEvaluation(_: string, defaultValue: string): Promise<ResolutionDetails<string>> {
    return { value: defaultValue, reason: StandardResolutionReasons.ERROR, errorCode: ErrorCode.TYPE_MISMATCH };
  }

  async resolveNumberEvaluation(_: string, defaultValue: number): Promise<ResolutionDetails<number>> {
    return { value: defaultValue, reason: StandardResolutionReasons.ERROR, errorCode: ErrorCode.TYPE_MISMATCH };
  }

  async resolveObjectEvaluation<T extends JsonValue>(_: string, defaultValue: T): Promise<ResolutionDetails<T>> {
    return { value: defaultValue, reason: StandardResolutionReasons.ERROR, errorCode: ErrorCode.TYPE_MISMATCH };
  }
}

/**
 * This process's copy of the kill switches. Filled from the database at start, re-read in full
 * on every notification (a handful of rows) and after any reconnect of the notification
 * connection, so a notification missed while it was down cannot leave a feature on here. A
 * re-read that fails is retried until one succeeds. Evaluated through OpenFeature, in a domain
 * of this service's own (tests run several services in one process).
 */
export class FeatureFlags {
  private readonly flags = new Map<string, boolean>();
  private readonly provider = new ConfidantFlagProvider(this.flags);
  private readonly domain = `confidant-${randomUUID()}`;
  private readonly client: Client;
  private running: Promise<void> | undefined;
  private again = false;
  private retry: NodeJS.Timeout | undefined;
  private retryMs = 250;
  private closed = false;
  private readonly listeners = new Set<(changed: FeatureName[]) => void>();

  constructor(
    private readonly scopes: Scopes,
    private readonly logger: FlagLogger,
  ) {
    this.client = OpenFeature.getClient(this.domain);
  }

  /** The first read (its failure is the caller's) and the provider's registration. */
  async start(): Promise<void> {
    await this.load();
    await OpenFeature.setProviderAndWait(this.domain, this.provider);
  }

  /** Whether a feature is on, through OpenFeature; from memory. Unknown or not ready: off. */
  isEnabled(name: FeatureName): Promise<boolean> {
    return this.client.getBooleanValue(name, false);
  }

  /** The same answer without a promise, for code that cannot wait (a socket's messages). */
  isEnabledNow(name: FeatureName): boolean {
    return this.flags.get(name) ?? false;
  }

  /** Called with the features whose state changed here, so what a switched-off feature is serving can be cut. */
  onChange(listener: (changed: FeatureName[]) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /**
   * Re-reads every flag. Calls that arrive during a read wait for one more read after it, so the
   * last answer always reflects a read that started after the last notification.
   */
  refresh(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const run = (async () => {
      do {
        this.again = false;
        await this.load();
      } while (this.again && !this.closed);
    })();
    this.running = run.finally(() => (this.running = undefined));
    this.running.catch((err: Error) => {
      this.logger.warn({ errName: err.name, retryInMs: this.retryMs }, 'could not re-read the feature switches; retrying');
      this.scheduleRetry();
    });
    return this.running;
  }

  private scheduleRetry() {
    if (this.closed || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.retryMs = Math.min(this.retryMs * 2, 5_000);
      void this.refresh().then(() => (this.retryMs = 250), () => undefined);
    }, this.retryMs);
    this.retry.unref();
  }

  private async load(): Promise<void> {
    const fresh = await this.scopes.run(
      system('read feature switches'),
      noRequest('features'),
      (scope) => readFlags(scope),
      { readOnly: true },
    );
    if (this.closed) return;
    const changed: FeatureName[] = [];
    for (const [name, enabled] of fresh) if (this.flags.get(name) !== enabled) changed.push(name as FeatureName);
    for (const name of this.flags.keys()) if (!fresh.has(name)) changed.push(name as FeatureName);
    this.flags.clear();
    for (const [name, enabled] of fresh) this.flags.set(name, enabled);
    if (changed.length === 0) return;
    this.logger.info({ features: Object.fromEntries(changed.map((n) => [n, this.flags.get(n) ?? false])) }, 'feature switches changed');
    this.provider.events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged: changed });
    // The flags are already current, so a retry would see no change: one listener's failure must
    // not keep the others from cutting what they serve.
    for (const l of this.listeners) {
      try {
        l(changed);
      } catch (err) {
        this.logger.warn({ errName: (err as Error).name }, 'a feature switch listener failed');
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    await this.running?.catch(() => undefined);
    // Detaches this service's domain (the SDK has no removal by domain).
    await OpenFeature.setProviderAndWait(this.domain, NOOP_PROVIDER).catch(() => undefined);
  }
}
