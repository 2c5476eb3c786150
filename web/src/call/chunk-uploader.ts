import { ApiError, getRecordingUpload, uploadRecordingChunk } from '../api';

export type UploadState =
  | { status: 'uploading'; sent: number; queued: number }
  | { status: 'retrying'; sent: number; queued: number; inMs: number }
  | { status: 'done'; sent: number }
  /** The server will take no more chunks (consent withdrawn, the recording was closed, too large). */
  | { status: 'closed'; sent: number; message: string }
  | { status: 'failed'; sent: number; message: string };

const BACKOFF_MS = [500, 1_000, 2_000, 4_000, 8_000, 10_000];
const REQUEST_TIMEOUT_MS = 30_000;

interface Chunk {
  seq: number;
  blob: Blob;
}

/**
 * Uploads a recording's chunks strictly in order (PUT /api/recordings/:id/chunks/:seq), one at a
 * time. A network failure is retried with backoff, after asking the server where the upload
 * stands; a 409 with `details.nextSeq` resumes from there (the server already has what comes
 * before). Sending a chunk again is harmless: the server accepts the same bytes twice.
 */
export class ChunkUploader {
  private readonly queue: Chunk[] = [];
  private nextSeq = 0;
  private sent = 0;
  private running = false;
  private ended = false;
  private outcome: UploadState | null = null;
  private readonly idleWaiters: (() => void)[] = [];
  private abort = new AbortController();

  constructor(
    private readonly recordingId: string,
    private readonly onState: (state: UploadState) => void = () => undefined,
    startSeq = 0,
  ) {
    this.nextSeq = startSeq;
  }

  /** Queues the next chunk of the recording (empty ones are skipped: the server refuses them). */
  push(blob: Blob): void {
    if (this.outcome || blob.size === 0) return;
    this.queue.push({ seq: this.nextSeq++, blob });
    void this.run();
  }

  /** Resolves once every queued chunk is on the server, or the upload has stopped for good. */
  drain(): Promise<UploadState> {
    this.ended = true;
    if (!this.running) return Promise.resolve(this.settle());
    return new Promise((resolve) => this.idleWaiters.push(() => resolve(this.settle())));
  }

  /** Gives up at once (the page is going away). */
  cancel(): void {
    this.abort.abort();
    this.outcome ??= { status: 'failed', sent: this.sent, message: 'The upload was cancelled.' };
    this.queue.length = 0;
  }

  private settle(): UploadState {
    if (!this.outcome && this.queue.length === 0) this.outcome = { status: 'done', sent: this.sent };
    return this.outcome ?? { status: 'uploading', sent: this.sent, queued: this.queue.length };
  }

  private stop(state: UploadState) {
    this.outcome = state;
    this.queue.length = 0;
    this.onState(state);
  }

  private async run() {
    if (this.running) return;
    this.running = true;
    let failures = 0;
    try {
      while (this.queue.length > 0 && !this.outcome) {
        const chunk = this.queue[0]!;
        this.onState({ status: 'uploading', sent: this.sent, queued: this.queue.length });
        try {
          const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]);
          await uploadRecordingChunk(this.recordingId, chunk.seq, chunk.blob, signal);
          this.queue.shift();
          this.sent++;
          failures = 0;
        } catch (error) {
          if (this.abort.signal.aborted) break;
          if (!(error instanceof ApiError)) {
            this.stop({ status: 'failed', sent: this.sent, message: 'The recording could not be uploaded.' });
            break;
          }
          if (error.status === 0 || error.status >= 500 || error.status === 429) {
            const inMs = BACKOFF_MS[Math.min(failures++, BACKOFF_MS.length - 1)]!;
            this.onState({ status: 'retrying', sent: this.sent, queued: this.queue.length, inMs });
            await sleep(inMs);
            await this.resync();
          } else if (error.code === 'chunk_out_of_order' || error.code === 'chunk_conflict') {
            const next = Number(error.details.nextSeq);
            if (!this.resumeFrom(next)) {
              this.stop({ status: 'failed', sent: this.sent, message: 'Part of the recording did not reach the server.' });
            }
          } else if (error.code === 'recording_not_open' || error.status === 404) {
            this.stop({ status: 'closed', sent: this.sent, message: 'The recording was stopped.' });
          } else if (error.code === 'recording_too_large' || error.status === 413) {
            this.stop({ status: 'closed', sent: this.sent, message: 'The recording has reached its maximum size.' });
          } else {
            this.stop({ status: 'failed', sent: this.sent, message: error.message });
          }
        }
      }
    } finally {
      this.running = false;
      if (this.ended || this.queue.length === 0) {
        const waiters = this.idleWaiters.splice(0);
        for (const w of waiters) w();
      }
    }
  }

  /** After a network failure: ask the server which chunk it expects; if it cannot say, just retry. */
  private async resync() {
    try {
      const state = await getRecordingUpload(this.recordingId);
      if (state.status !== 'recording') {
        this.stop({ status: 'closed', sent: this.sent, message: 'The recording was stopped.' });
        return;
      }
      this.resumeFrom(state.nextSeq);
    } catch {
      // Still offline: the next attempt will tell.
    }
  }

  /** Drops the queued chunks the server already has; false if it expects one we no longer hold. */
  private resumeFrom(next: number): boolean {
    if (!Number.isInteger(next)) return false;
    const head = this.queue[0];
    if (head && next < head.seq) return false;
    while (this.queue.length > 0 && this.queue[0]!.seq < next) {
      this.queue.shift();
      this.sent++;
    }
    return true;
  }
}

function sleep(ms: number) {
  return new Promise<void>((resolve) => setTimeout(resolve, ms));
}
