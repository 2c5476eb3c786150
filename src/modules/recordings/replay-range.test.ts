import { describe, expect, it } from 'vitest';
import { AppError } from '../../errors';
import { parseRange, secondsCovered } from './recordings';

describe('Range headers as media elements send them', () => {
  const size = 1000;
  it('serves the whole file without a header, or with one it does not understand', () => {
    for (const h of [undefined, '', 'items=0-1', 'bytes=', 'bytes=-', 'bytes=0-1,5-9', 'bytes=a-b']) {
      expect(parseRange(h, size), String(h)).toEqual({ start: 0, end: 999, partial: false });
    }
  });
  it('understands open, closed and suffix ranges, clamping the end', () => {
    expect(parseRange('bytes=0-', size)).toEqual({ start: 0, end: 999, partial: true });
    expect(parseRange('bytes=100-199', size)).toEqual({ start: 100, end: 199, partial: true });
    expect(parseRange('bytes=900-5000', size)).toEqual({ start: 900, end: 999, partial: true });
    expect(parseRange('bytes=-100', size)).toEqual({ start: 900, end: 999, partial: true });
    expect(parseRange('bytes=-5000', size)).toEqual({ start: 0, end: 999, partial: true });
  });
  it('refuses a range that starts past the end with 416 and the size', () => {
    for (const h of ['bytes=1000-', 'bytes=5000-6000', 'bytes=10-5', 'bytes=-0']) {
      const err = (() => {
        try {
          parseRange(h, size);
        } catch (e) {
          return e;
        }
      })();
      expect(err, h).toBeInstanceOf(AppError);
      expect((err as AppError).status).toBe(416);
      expect((err as AppError).headers).toEqual({ 'content-range': 'bytes */1000' });
    }
  });
});

describe('which seconds a byte range holds', () => {
  // Clusters at byte offsets 100, 400, 700 starting at 0 s, 2 s and 4 s; 6 s in all.
  const index: [number, number][] = [
    [100, 0],
    [400, 2000],
    [700, 4000],
  ];
  it('maps a range to the clusters it touches', () => {
    expect(secondsCovered(index, 6000, 0, 999)).toEqual({ fromMs: 0, toMs: 6000 });
    expect(secondsCovered(index, 6000, 450, 500)).toEqual({ fromMs: 2000, toMs: 4000 });
    expect(secondsCovered(index, 6000, 450, 750)).toEqual({ fromMs: 2000, toMs: 6000 });
    expect(secondsCovered(index, 6000, 700, 700)).toEqual({ fromMs: 4000, toMs: 6000 });
  });
  it('says a range within the headers holds no seconds at all', () => {
    expect(secondsCovered(index, 6000, 0, 99)).toEqual({ fromMs: 0, toMs: 0 });
  });
});
