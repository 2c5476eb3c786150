import { describe, expect, it } from 'vitest';
import { RecordingBuffers, wipe } from './recording-buffers';

const KiB = 1024;

function clock() {
  let t = 1_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('RecordingBuffers', () => {
  it("hands a recording's buffers back to that recording only", () => {
    const c = clock();
    const kept = new RecordingBuffers(1024 * KiB, 5_000, c.now);
    const a = Buffer.alloc(64 * KiB, 0xaa);
    kept.giveBack('rec-a', a);
    expect(kept.take('rec-b', 64 * KiB)).toBeUndefined();
    expect(kept.take('rec-a', 128 * KiB)).toBeUndefined(); // sizes are exact
    expect(kept.take('rec-a', 64 * KiB)).toBe(a);
    expect(kept.take('rec-a', 64 * KiB)).toBeUndefined(); // handed out once
    expect(kept.stats().bytes).toBe(0);
    kept.clear();
  });

  it('wipes and drops the buffers of a recording idle for idleMs', () => {
    const c = clock();
    const kept = new RecordingBuffers(1024 * KiB, 5_000, c.now);
    const a = Buffer.alloc(64 * KiB, 0xaa);
    const b = Buffer.alloc(64 * KiB, 0xbb);
    kept.giveBack('rec-a', a);
    c.advance(3_000);
    kept.giveBack('rec-b', b);
    c.advance(2_500); // a idle 5.5 s, b 2.5 s
    kept.sweep();
    expect(a.every((x) => x === 0)).toBe(true);
    expect(b.every((x) => x === 0xbb)).toBe(true);
    expect(kept.take('rec-a', 64 * KiB)).toBeUndefined();
    expect(kept.stats()).toMatchObject({ bytes: 64 * KiB, recordings: 1 });
    kept.clear();
    expect(b.every((x) => x === 0)).toBe(true);
    expect(kept.stats()).toMatchObject({ bytes: 0, recordings: 0 });
  });

  it('a take keeps a recording alive; past the allowance the least recently used recording goes first, wiped', () => {
    const c = clock();
    const kept = new RecordingBuffers(192 * KiB, 5_000, c.now);
    const bufs = Array.from({ length: 4 }, (_, i) => Buffer.alloc(64 * KiB, i + 1));
    kept.giveBack('rec-a', bufs[0]!);
    c.advance(10);
    kept.giveBack('rec-b', bufs[1]!);
    c.advance(10);
    kept.giveBack('rec-a', bufs[2]!); // a used last
    c.advance(10);
    kept.giveBack('rec-c', bufs[3]!); // 256 KiB > 192 KiB: b (least recently used) goes
    expect(bufs[1]!.every((x) => x === 0)).toBe(true);
    expect(kept.stats().of('rec-b')).toBe(0);
    expect(kept.stats().of('rec-a')).toBe(128 * KiB);
    expect(kept.stats().of('rec-c')).toBe(64 * KiB);
    expect(kept.stats().bytes).toBe(192 * KiB);
    kept.clear();
  });

  it("when a recording's own buffers fill the allowance, the one given back is wiped, not the ones kept", () => {
    const kept = new RecordingBuffers(128 * KiB, 5_000);
    const bufs = Array.from({ length: 3 }, (_, i) => Buffer.alloc(64 * KiB, i + 1));
    for (const b of bufs) kept.giveBack('rec-a', b);
    expect(bufs[2]!.every((x) => x === 0)).toBe(true);
    expect(bufs[0]!.every((x) => x === 1) && bufs[1]!.every((x) => x === 2)).toBe(true);
    expect(kept.stats()).toMatchObject({ bytes: 128 * KiB, recordings: 1 });
    expect(kept.take('rec-a', 64 * KiB)).toBe(bufs[1]);
    kept.clear();
  });

  it('a buffer bigger than the whole allowance is wiped, not kept', () => {
    const kept = new RecordingBuffers(64 * KiB, 5_000);
    const big = Buffer.alloc(128 * KiB, 0x55);
    kept.giveBack('rec-a', big);
    expect(big.every((x) => x === 0)).toBe(true);
    expect(kept.stats().bytes).toBe(0);
  });

  it('the idle timer wipes on its own and then stops (it never keeps the process alive)', async () => {
    const kept = new RecordingBuffers(1024 * KiB, 300);
    const a = Buffer.alloc(16 * KiB, 0x77);
    kept.giveBack('rec-a', a);
    await new Promise((r) => setTimeout(r, 900));
    expect(a.every((x) => x === 0)).toBe(true);
    expect(kept.stats().bytes).toBe(0);
  });

  it('wipe zero-fills shared and ordinary buffers of any length', () => {
    for (const len of [1, 1000, 64 * KiB, 64 * KiB + 7, 300 * KiB]) {
      const shared = Buffer.from(new SharedArrayBuffer(len)).fill(0xab);
      const plain = Buffer.alloc(len, 0xcd);
      wipe(shared);
      wipe(plain);
      expect(shared.every((x) => x === 0)).toBe(true);
      expect(plain.every((x) => x === 0)).toBe(true);
    }
  });
});
