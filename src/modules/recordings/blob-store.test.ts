import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlobNotFoundError, createLocalBlobStore, InvalidBlobNameError, isValidBlobName, type BlobStore } from './blob-store';

let tmp: string;
let root: string;
let store: BlobStore;
beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'confidant-blobs-'));
  root = path.join(tmp, 'data', 'blobs');
  store = createLocalBlobStore(root);
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function readAll(name: string): Promise<Buffer> {
  const r = await store.open(name);
  try {
    return await r.read(0, await r.size());
  } finally {
    await r.close();
  }
}

/** Every file under root, including hidden ones, relative. */
async function filesOnDisk(dir = root, rel = ''): Promise<string[]> {
  const out: string[] = [];
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await filesOnDisk(path.join(dir, e.name), r)));
    else out.push(r);
  }
  return out.sort();
}

describe('names', () => {
  const bad = [
    '',
    '..',
    '../x',
    'a/../../x',
    'a/..',
    '../../etc/passwd',
    '/etc/passwd',
    'a//b',
    'a/',
    '/a',
    '.hidden',
    'a/.tmp-x',
    'A',
    'recordings/ABC',
    'a\\b',
    '..\\..\\x',
    'a\0b',
    'a b',
    'a%2f..%2fb',
    'é',
    'a/./b',
    './a',
    '-a',
    'a/_b',
    'x'.repeat(201),
  ];

  it('accepts the names the service uses', () => {
    for (const n of ['recordings/0b9d6d0e-6a3e-4c1b-9a43-3d0f5c2a9b11', 'staging/0b9d6d0e-6a3e-4c1b-9a43-3d0f5c2a9b11/00000003', 'a', 'a.b_c-d', 'x'.repeat(200)]) {
      expect(isValidBlobName(n), n).toBe(true);
    }
    expect(isValidBlobName('a..b')).toBe(true); // dots inside a segment are fine, '..' as a segment is not
  });

  it('rejects traversal and anything outside the grammar, in every operation', async () => {
    for (const n of bad) {
      expect(isValidBlobName(n), JSON.stringify(n)).toBe(false);
      await expect(store.put(n, Buffer.from('x')), n).rejects.toBeInstanceOf(InvalidBlobNameError);
      await expect(store.open(n)).rejects.toBeInstanceOf(InvalidBlobNameError);
      await expect(store.exists(n)).rejects.toBeInstanceOf(InvalidBlobNameError);
      await expect(store.size(n)).rejects.toBeInstanceOf(InvalidBlobNameError);
      await expect(store.delete(n)).rejects.toBeInstanceOf(InvalidBlobNameError);
      await expect(store.deletePrefix(n)).rejects.toBeInstanceOf(InvalidBlobNameError);
      if (n !== '') await expect(store.list(n)).rejects.toBeInstanceOf(InvalidBlobNameError);
    }
    // Nothing was written anywhere: not under root, not next to it.
    expect(await filesOnDisk()).toEqual([]);
    expect((await readdir(tmp)).sort()).toEqual([]);
  });

  it('rejects non-string names', async () => {
    await expect(store.open(undefined as unknown as string)).rejects.toBeInstanceOf(InvalidBlobNameError);
    await expect(store.put(['a'] as unknown as string, Buffer.alloc(1))).rejects.toBeInstanceOf(InvalidBlobNameError);
  });
});

describe('local blob store', () => {
  it('put / open / read / size / exists / delete', async () => {
    const data = randomBytes(100_000);
    expect(await store.exists('recordings/a')).toBe(false);
    await store.put('recordings/a', data);
    expect(await store.exists('recordings/a')).toBe(true);
    expect(await store.size('recordings/a')).toBe(data.length);
    const r = await store.open('recordings/a');
    expect(await r.size()).toBe(data.length);
    expect((await r.read(10, 20)).equals(data.subarray(10, 30))).toBe(true);
    expect((await r.read(data.length - 5, 100)).equals(data.subarray(data.length - 5))).toBe(true); // short at the end
    expect((await r.read(data.length + 10, 5)).length).toBe(0);
    const target = Buffer.alloc(50);
    expect(await r.readInto!(target, 99_990)).toBe(10);
    expect(target.subarray(0, 10).equals(data.subarray(99_990))).toBe(true);
    await expect(r.read(-1, 5)).rejects.toBeInstanceOf(RangeError);
    await r.close();
    await r.close(); // idempotent
    await expect(r.read(0, 1)).rejects.toThrow();
    await store.delete('recordings/a');
    expect(await store.exists('recordings/a')).toBe(false);
    await store.delete('recordings/a'); // missing is fine
    await store.delete('nothing/here/at/all');
  });

  it('accepts iterables and async iterables', async () => {
    const parts = [randomBytes(10), randomBytes(70_000), Buffer.alloc(0), randomBytes(3)];
    await store.put('a/sync', parts);
    await store.put(
      'a/async',
      (async function* () {
        for (const p of parts) {
          await new Promise((r) => setTimeout(r, 1));
          yield p;
        }
      })(),
    );
    expect((await readAll('a/sync')).equals(Buffer.concat(parts))).toBe(true);
    expect((await readAll('a/async')).equals(Buffer.concat(parts))).toBe(true);
    await store.put('a/empty', Buffer.alloc(0));
    expect(await store.size('a/empty')).toBe(0);
  });

  it('creates directories 0700 and files 0600', async () => {
    await store.put('staging/x/00000001', Buffer.from('hello'));
    expect((await stat(root)).mode & 0o777).toBe(0o700);
    expect((await stat(path.join(root, 'staging'))).mode & 0o777).toBe(0o700);
    expect((await stat(path.join(root, 'staging', 'x'))).mode & 0o777).toBe(0o700);
    expect((await stat(path.join(root, 'staging', 'x', '00000001'))).mode & 0o777).toBe(0o600);
  });

  it('open / size of a missing object → BlobNotFoundError (also for a name that is a directory)', async () => {
    await expect(store.open('recordings/missing')).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(store.size('recordings/missing')).rejects.toBeInstanceOf(BlobNotFoundError);
    await store.put('staging/x/1', Buffer.from('a'));
    await expect(store.open('staging/x')).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(store.size('staging/x')).rejects.toBeInstanceOf(BlobNotFoundError);
    expect(await store.exists('staging/x')).toBe(false);
    // Below a file.
    await expect(store.open('staging/x/1/2')).rejects.toBeInstanceOf(BlobNotFoundError);
  });

  it('put is atomic: a write in progress or a failed write is never visible, and leaves no tmp file', async () => {
    await store.put('recordings/r', Buffer.from('old version'));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const writing = store.put(
      'recordings/r',
      (async function* () {
        yield Buffer.from('new ');
        await gate;
        yield Buffer.from('version, longer');
      })(),
    );
    await new Promise((r) => setTimeout(r, 30));
    // Mid-write: the old object is what is visible; the tmp file exists on disk but is not listed.
    expect((await readAll('recordings/r')).toString()).toBe('old version');
    expect(await store.list('')).toEqual(['recordings/r']);
    expect((await filesOnDisk()).some((f) => f.includes('.tmp-'))).toBe(true);
    const reader = await store.open('recordings/r');
    release();
    await writing;
    expect((await readAll('recordings/r')).toString()).toBe('new version, longer');
    // A reader opened before the replacement still sees the old object whole.
    expect((await reader.read(0, 100)).toString()).toBe('old version');
    await reader.close();
    expect(await filesOnDisk()).toEqual(['recordings/r']);

    // A failing source: nothing new appears, the old object stays, the tmp file is removed.
    await expect(
      store.put(
        'recordings/r',
        (async function* () {
          yield Buffer.from('partial');
          throw new Error('upload broke');
        })(),
      ),
    ).rejects.toThrow('upload broke');
    await expect(
      store.put(
        'recordings/s',
        (async function* () {
          yield Buffer.from('partial');
          throw new Error('upload broke');
        })(),
      ),
    ).rejects.toThrow('upload broke');
    expect((await readAll('recordings/r')).toString()).toBe('new version, longer');
    expect(await store.exists('recordings/s')).toBe(false);
    expect(await filesOnDisk()).toEqual(['recordings/r']);
  });

  it('concurrent puts of one name leave one complete version', async () => {
    const versions = Array.from({ length: 8 }, (_, i) => Buffer.alloc(50_000 + i, i + 1));
    await Promise.all(versions.map((v) => store.put('recordings/c', v)));
    const got = await readAll('recordings/c');
    expect(versions.some((v) => v.equals(got))).toBe(true);
    expect(await filesOnDisk()).toEqual(['recordings/c']);
  });

  it('leftover tmp files from a crash are never listed or served', async () => {
    await store.put('staging/abc/00000001', Buffer.from('one'));
    const dir = path.join(root, 'staging', 'abc');
    await writeFile(path.join(dir, '.tmp-00000002-deadbeef'), 'half written');
    await writeFile(path.join(root, '.tmp-recording-cafe'), 'half written');
    await mkdir(path.join(root, '.tmp-dir'));
    await writeFile(path.join(root, '.tmp-dir', 'x'), 'hidden');
    expect(await store.list('')).toEqual(['staging/abc/00000001']);
    expect(await store.list('staging/abc')).toEqual(['staging/abc/00000001']);
    await expect(store.open('staging/abc/.tmp-00000002-deadbeef')).rejects.toBeInstanceOf(InvalidBlobNameError);
    await expect(store.open('staging/abc/00000002')).rejects.toBeInstanceOf(BlobNotFoundError);
    // deletePrefix takes the leftovers under the prefix with it.
    await store.deletePrefix('staging/abc');
    expect((await filesOnDisk()).filter((f) => f.startsWith('staging'))).toEqual([]);
  });

  it('list: sorted, whole-segment prefixes, "" for everything', async () => {
    for (const n of ['staging/abc/2', 'staging/abc/10', 'staging/abc/1', 'staging/abcd/1', 'staging/ab', 'recordings/abc', 'x']) await store.put(n, Buffer.from(n));
    expect(await store.list('staging/abc')).toEqual(['staging/abc/1', 'staging/abc/10', 'staging/abc/2']);
    expect(await store.list('staging')).toEqual(['staging/ab', 'staging/abc/1', 'staging/abc/10', 'staging/abc/2', 'staging/abcd/1']);
    expect(await store.list('staging/ab')).toEqual(['staging/ab']);
    expect(await store.list('x')).toEqual(['x']);
    expect(await store.list('nothing')).toEqual([]);
    expect(await store.list('')).toHaveLength(7);
    expect(await createLocalBlobStore(path.join(tmp, 'never-created')).list('')).toEqual([]);
  });

  it('deletePrefix removes the subtree only (never a sibling with a longer name); missing is fine', async () => {
    for (const n of ['staging/abc/1', 'staging/abc/2', 'staging/abcd/1', 'recordings/abc']) await store.put(n, Buffer.from(n));
    await store.deletePrefix('staging/abc');
    expect(await store.list('')).toEqual(['recordings/abc', 'staging/abcd/1']);
    await store.deletePrefix('staging/abc');
    await store.deletePrefix('recordings/abc'); // a single object
    expect(await store.list('')).toEqual(['staging/abcd/1']);
    await expect(store.deletePrefix('')).rejects.toBeInstanceOf(InvalidBlobNameError);
  });

  it('does not follow symlinks planted inside the store', async () => {
    const outside = path.join(tmp, 'secret.txt');
    await writeFile(outside, 'outside the store');
    await mkdir(path.join(root, 'recordings'), { recursive: true });
    await symlink(outside, path.join(root, 'recordings', 'link'));
    await symlink(tmp, path.join(root, 'dirlink'));
    await expect(store.open('recordings/link')).rejects.toBeInstanceOf(BlobNotFoundError);
    expect(await store.exists('recordings/link')).toBe(false);
    await expect(store.size('recordings/link')).rejects.toBeInstanceOf(BlobNotFoundError);
    expect(await store.list('')).toEqual([]);
    // Deleting through the store removes the link, not its target.
    await store.deletePrefix('dirlink');
    expect(await readFile(outside, 'utf8')).toBe('outside the store');
  });
});

describe('open files are shared between readers', () => {
  it('readers of one object share a descriptor, also one opened just after the others closed', async () => {
    const data = randomBytes(70_000);
    await store.put('recordings/shared', data);
    const [a, b] = await Promise.all([store.open('recordings/shared'), store.open('recordings/shared')]);
    expect(a.fd).toBeTypeOf('number');
    expect(b.fd).toBe(a.fd);
    expect((await a.read(5, 10)).equals(data.subarray(5, 15))).toBe(true);
    await a.close();
    // b still reads after a closed.
    expect((await b.read(69_990, 10)).equals(data.subarray(69_990))).toBe(true);
    await b.close();
    const c = await store.open('recordings/shared');
    expect(c.fd).toBe(a.fd);
    expect((await c.read(0, 3)).equals(data.subarray(0, 3))).toBe(true);
    await c.close();
  });

  it('a put of the name: open readers keep what they opened, new readers get the new object', async () => {
    const first = randomBytes(1000);
    const second = randomBytes(2000);
    await store.put('recordings/replaced', first);
    const before = await store.open('recordings/replaced');
    await store.put('recordings/replaced', second);
    const after = await store.open('recordings/replaced');
    expect(await before.size()).toBe(1000);
    expect((await before.read(0, 1000)).equals(first)).toBe(true);
    expect(await after.size()).toBe(2000);
    expect((await after.read(0, 2000)).equals(second)).toBe(true);
    expect(after.fd).not.toBe(before.fd);
    await before.close();
    await after.close();
  });

  it('a put racing an open: once the put is done, every new reader gets the new object', async () => {
    const first = randomBytes(500);
    const second = randomBytes(600);
    await store.put('recordings/raced', first);
    const opening = store.open('recordings/raced');
    await store.put('recordings/raced', second);
    const early = await opening;
    expect([500, 600]).toContain(await early.size());
    const late = await store.open('recordings/raced');
    expect((await late.read(0, 600)).equals(second)).toBe(true);
    await early.close();
    await late.close();
  });

  it('a delete, or a deletePrefix above the name: new opens find nothing, open readers keep reading', async () => {
    const data = randomBytes(300);
    await store.put('recordings/gone', data);
    await store.put('chunks/rec-1/000001', data);
    const held = await store.open('recordings/gone');
    const heldChunk = await store.open('chunks/rec-1/000001');
    await store.delete('recordings/gone');
    await store.deletePrefix('chunks/rec-1');
    await expect(store.open('recordings/gone')).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(store.open('chunks/rec-1/000001')).rejects.toBeInstanceOf(BlobNotFoundError);
    expect((await held.read(0, 300)).equals(data)).toBe(true);
    expect((await heldChunk.read(0, 300)).equals(data)).toBe(true);
    await held.close();
    await heldChunk.close();
  });
});

describe('open files: an open racing a delete', () => {
  it('either finds nothing or gets a reader that reads the old bytes, never a closed file', async () => {
    const data = randomBytes(400);
    for (let i = 0; i < 20; i++) {
      const name = `recordings/race-${i}`;
      await store.put(name, data);
      // The outcome is taken at once (a rejection must not wait unhandled for the delete).
      const opening = store.open(name).then(
        (reader) => ({ reader }),
        (error: unknown) => ({ error }),
      );
      await store.delete(name);
      const got = await opening;
      if ('error' in got) {
        expect(got.error).toBeInstanceOf(BlobNotFoundError);
        continue;
      }
      const { reader } = got;
      expect((await reader.read(0, 400)).equals(data)).toBe(true);
      await reader.close();
      await expect(store.open(name)).rejects.toBeInstanceOf(BlobNotFoundError);
    }
  });
});

describe('open files: a reader arriving as an overtaken open lands', () => {
  it('is never handed the overtaken file uncounted: it keeps reading after the first reader closes', async () => {
    const name = 'recordings/overtaken';
    let held: { land: (file: unknown) => void; open: () => Promise<unknown> } | undefined;
    const gated = createLocalBlobStore(root, {
      // The first open of the name waits for the test; every other open runs at once.
      openFile: (n, open) => (n === name && !held ? new Promise((land) => (held = { land: land as (f: unknown) => void, open })) : open()),
    });
    await gated.put(name, randomBytes(100));
    const first = gated.open(name);
    const newer = randomBytes(200);
    await gated.put(name, newer); // overtakes the open in flight
    const file = await held!.open();
    // Another chain's reader runs in the very microtask after the open lands, before any separate clean-up.
    let late: ReturnType<BlobStore['open']> | undefined;
    held!.land(file);
    queueMicrotask(() => (late = gated.open(name)));
    const a = await first;
    const b = await late!;
    await a.close();
    // Had b joined the overtaken open uncounted, a's close would have closed the file under it.
    expect((await b.read(0, 200)).equals(newer)).toBe(true);
    await b.close();
  });
});
