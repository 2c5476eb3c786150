import type { Scopes } from '../../access/scope';
import { finaliseRecording, sweepRecordings, type RecordingDeps } from './recordings';

interface Log {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * Finalises recordings in the background, one at a time (it is CPU and disk work, and calls must
 * not stutter for it), and sweeps every so often for recordings nobody will finish.
 */
export class RecordingFinaliser {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private current: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private deps!: RecordingDeps;

  constructor(
    private readonly scopes: Scopes,
    private readonly log: Log,
  ) {}

  bind(deps: RecordingDeps) {
    this.deps = deps;
  }

  schedule(recordingId: string): void {
    if (this.stopped || this.queued.has(recordingId)) return;
    this.queued.add(recordingId);
    this.queue.push(recordingId);
    this.pump();
  }

  /** Sweeps now and then every `everyMs`. */
  start(everyMs: number): void {
    const sweep = () => {
      if (this.stopped) return;
      sweepRecordings(this.scopes, this.deps).catch((err: Error) => this.log.error({ errName: err.name }, 'recording sweep failed'));
    };
    sweep();
    this.timer = setInterval(sweep, everyMs);
    this.timer.unref();
  }

  /** Resolves once nothing is queued or running. */
  async idle(): Promise<void> {
    while (this.current) await this.current;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.queue.length = 0;
    await this.idle();
  }

  private pump() {
    if (this.current) return;
    const id = this.queue.shift();
    if (!id) return;
    this.current = finaliseRecording(this.scopes, this.deps, id)
      .then((outcome) => this.log.info({ recordingId: id, outcome }, 'recording finalised'))
      .catch((err: Error) => this.log.error({ recordingId: id, errName: err.name }, 'recording finalisation failed; the sweep will retry'))
      .finally(() => {
        this.queued.delete(id);
        this.current = null;
        this.pump();
      });
  }
}
