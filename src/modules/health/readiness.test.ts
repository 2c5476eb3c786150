import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Readiness, type ReadinessDeps, type ReadinessReport } from './readiness';

const dir = mkdtempSync(path.join(tmpdir(), 'confidant-ready-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ok = { probe: async () => undefined };
const applied = ['0001_a', '0002_b'];
const deps = (over: Partial<ReadinessDeps> = {}): ReadinessDeps => ({
  db: { ping: async () => ({ migrations: applied }) },
  dataDir: dir,
  blobs: ok,
  minFreeBytes: 1,
  expectedMigrations: applied,
  timeoutMs: 300,
  ...over,
});

describe('readiness', () => {
  it('is ready when every check passes, and leaves nothing behind in the data directory', async () => {
    const r = await new Readiness(deps()).check();
    expect(r).toMatchObject({ ready: true, checks: { database: 'ok', migrations: 'ok', dataDir: 'ok', blobStore: 'ok', disk: 'ok' } });
    expect(r.freeBytes).toBeGreaterThan(0);
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('answers within its timeout when the database never does, and says so', async () => {
    let aborted = false;
    const ping = (signal?: AbortSignal) =>
      new Promise<never>(() => signal?.addEventListener('abort', () => (aborted = true)));
    const started = performance.now();
    const r = await new Readiness(deps({ db: { ping } })).check();
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(r.ready).toBe(false);
    expect(r.checks).toMatchObject({ database: 'timeout', migrations: 'unavailable', dataDir: 'ok' });
    expect(aborted).toBe(true);
  });

  it('names a refused connection, a full disk and a schema behind the code', async () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    expect((await new Readiness(deps({ db: { ping: async () => Promise.reject(refused) } })).check()).checks.database).toBe('unavailable');
    const behind = await new Readiness(deps({ expectedMigrations: [...applied, '0003_c'] })).check();
    expect(behind).toMatchObject({ ready: false, checks: { database: 'ok', migrations: 'behind' } });
    // A database migrated further (by a newer instance during a rolling deploy) is fine.
    expect((await new Readiness(deps({ expectedMigrations: ['0001_a'] })).check()).ready).toBe(true);
    const full = await new Readiness(deps({ minFreeBytes: Number.MAX_SAFE_INTEGER })).check();
    expect(full).toMatchObject({ ready: false, checks: { disk: 'full' } });
    const noSpace = Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' });
    expect((await new Readiness(deps({ blobs: { probe: async () => Promise.reject(noSpace) } })).check()).checks.blobStore).toBe('full');
  });

  it('reports a data directory that takes no write', async () => {
    const file = path.join(dir, 'not-a-directory');
    writeFileSync(file, 'x');
    const r = await new Readiness(deps({ dataDir: file })).check();
    expect(r.checks.dataDir).toBe('not_writable');
    rmSync(file);
  });

  it('shares one run between probes that arrive together, and tells only of changes', async () => {
    let pings = 0;
    const changes: ReadinessReport[] = [];
    let fail = false;
    const readiness = new Readiness(
      deps({
        db: { ping: async () => (pings++, fail ? Promise.reject(Object.assign(new Error('gone'), { code: '57P01' })) : { migrations: applied }) },
        onChange: (r) => changes.push(r),
      }),
    );
    await Promise.all([readiness.check(), readiness.check(), readiness.check()]);
    expect(pings).toBe(1);
    await readiness.check();
    fail = true;
    await readiness.check();
    await readiness.check();
    fail = false;
    await readiness.check();
    expect(changes.map((c) => c.ready)).toEqual([true, false, true]);
  });
});
