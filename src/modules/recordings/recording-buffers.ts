/**
 * Plaintext buffers kept between the range streams of one recording.
 *
 * A replay is many range requests (a player asks again at every seek and every few megabytes),
 * and each is a new stream. A stream that had to allocate its output buffers afresh paid, for
 * every megabyte, new pages from the kernel (zeroed, faulted in by whoever wrote first, unmapped
 * after a garbage collection) and a share of a mark-compact: external memory counts against V8's
 * heap. Measured on the replay route (bench:replay), fresh shared-memory buffers cost more than
 * the decryption itself.
 *
 * The rule that makes keeping them safe: **a buffer that ever held a recording's plaintext is
 * only ever handed to a stream of that same recording.** Buffers are kept per recording, never in
 * a common pool. So even a mistake in a stream's accounting of which bytes are still queued could
 * at worst send a viewer other bytes of the recording they are entitled to play, never another
 * patient's: the 2020 failure (one patient's consultation shown to another) cannot be made out of
 * a reused buffer.
 *
 * A stream gives its buffers back only once its sink has passed every byte on (the response's
 * 'finish': the kernel has copied them) and it has ended; a stream that was aborted, or whose sink
 * closed early, gives nothing back (its buffers may still be queued somewhere) and they go to the
 * garbage collector as before.
 *
 * Kept buffers are wiped (zero-filled) when dropped: after `idleMs` without a take or give-back
 * for their recording, or when more than `maxBytes` would be kept (least recently used recording
 * first), so that plaintext does not linger in freed memory longer than a replay needs it.
 */
export class RecordingBuffers {
  private readonly byRecording = new Map<string, { free: Map<number, Buffer[]>; bytes: number; usedAt: number }>();
  private bytes = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    readonly maxBytes: number,
    readonly idleMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** A kept buffer of exactly `size` bytes that held plaintext of this recording, if there is one. */
  take(recordingKey: string, size: number): Buffer | undefined {
    const entry = this.byRecording.get(recordingKey);
    if (!entry) return undefined;
    entry.usedAt = this.now();
    const list = entry.free.get(size);
    const buf = list?.pop();
    if (!buf) return undefined;
    entry.bytes -= buf.length;
    this.bytes -= buf.length;
    if (entry.bytes === 0) this.byRecording.delete(recordingKey);
    this.stopIfEmpty();
    return buf;
  }

  /**
   * Keeps `buf`, which holds (or held) plaintext of this recording only and is referenced by no
   * one any more, for the recording's next streams. If it does not fit, other recordings' buffers
   * are dropped first, least recently used first; if this recording's own buffers fill the
   * allowance, this one is wiped and dropped (not the recording's whole list: wiping 64 MiB at once
   * held up the event loop of a busy replay, and its streams were about to take them again).
   */
  giveBack(recordingKey: string, buf: Buffer): void {
    if (buf.length === 0) return;
    while (this.bytes + buf.length > this.maxBytes && this.dropOldestOther(recordingKey));
    if (this.bytes + buf.length > this.maxBytes) {
      wipe(buf);
      return;
    }
    let entry = this.byRecording.get(recordingKey);
    if (!entry) {
      entry = { free: new Map(), bytes: 0, usedAt: 0 };
      this.byRecording.set(recordingKey, entry);
    }
    entry.usedAt = this.now();
    let list = entry.free.get(buf.length);
    if (!list) entry.free.set(buf.length, (list = []));
    list.push(buf);
    entry.bytes += buf.length;
    this.bytes += buf.length;
    this.timer ??= setInterval(() => this.sweep(), Math.max(250, Math.floor(this.idleMs / 2))).unref();
  }

  /** Wipes and drops the buffers of recordings idle for `idleMs` or more. */
  sweep(): void {
    const cutoff = this.now() - this.idleMs;
    for (const [key, entry] of this.byRecording) if (entry.usedAt <= cutoff) this.drop(key);
    this.stopIfEmpty();
  }

  /** Wipes and drops everything kept (tests; shutdown). */
  clear(): void {
    for (const key of [...this.byRecording.keys()]) this.drop(key);
    this.stopIfEmpty();
  }

  /** Bytes kept in all, and per recording. */
  stats(): { bytes: number; recordings: number; of(recordingKey: string): number } {
    return { bytes: this.bytes, recordings: this.byRecording.size, of: (k) => this.byRecording.get(k)?.bytes ?? 0 };
  }

  /** Drops the buffers of the least recently used recording other than `giving`; false if there is none. */
  private dropOldestOther(giving: string): boolean {
    let oldest: string | null = null;
    let at = Infinity;
    for (const [key, entry] of this.byRecording) {
      if (key !== giving && entry.usedAt < at) {
        oldest = key;
        at = entry.usedAt;
      }
    }
    if (oldest === null) return false;
    this.drop(oldest);
    return true;
  }

  private drop(key: string): void {
    const entry = this.byRecording.get(key);
    if (!entry) return;
    this.byRecording.delete(key);
    for (const list of entry.free.values()) for (const buf of list) wipe(buf);
    this.bytes -= entry.bytes;
  }

  private stopIfEmpty(): void {
    if (this.bytes === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}

const ZEROES = Buffer.alloc(64 * 1024);

/**
 * Zero-fills `buf`. With a Buffer as the pattern, fill is one native copy after another; with the
 * number 0 it is TypedArray#fill, which for shared memory (the buffers kept here are) writes
 * element by element as relaxed atomics: 3 GB/s rather than 70 here, a third of a millisecond per
 * MiB on the event loop.
 */
export function wipe(buf: Buffer): void {
  buf.fill(ZEROES);
}
