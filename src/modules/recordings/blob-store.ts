/**
 * Where sealed recordings and chunks live: a small object-store interface, and its default
 * implementation on the local file system (DATA_DIR/blobs). Objects are written atomically and
 * are immutable once written (a put of the same name replaces the object as a whole).
 *
 * Names are lower-case paths such as `recordings/<uuid>` or `staging/<uuid>/00000003`, checked
 * strictly (no `..`, no leading dot, no empty segment, at most 200 characters): anything else
 * throws `InvalidBlobNameError`, so a name can never reach outside the store's root.
 *
 * A prefix (deletePrefix, list) is a whole name, matching the object of that name and every
 * object below it: `staging/abc` covers `staging/abc` and `staging/abc/0001`, never
 * `staging/abcd`. `list('')` lists everything; `deletePrefix` refuses ''.
 */
import { constants, type Dirent } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm, unlink, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';

export interface BlobReader {
  /** Size of the object as opened (a later put of the same name does not change what this reader sees). */
  size(): Promise<number>;
  /** Up to `length` bytes from `offset`; shorter only at the end of the object. */
  read(offset: number, length: number): Promise<Buffer>;
  /**
   * Optional: fills `target` from `offset` (fewer bytes only at the end of the object) and returns
   * how many bytes were read. Lets a caller reuse its buffers (openRangeStream does).
   */
  readInto?(target: Buffer, offset: number): Promise<number>;
  /**
   * Optional: the open file's descriptor, for a worker thread to read from (openRangeStream's
   * segment opener) while this reader is open. Never used after `close`.
   */
  readonly fd?: number;
  /** Idempotent. */
  close(): Promise<void>;
}

export interface BlobStore {
  /** Atomic: the object appears under its name complete, or not at all. */
  put(name: string, data: Buffer | Iterable<Buffer> | AsyncIterable<Buffer>): Promise<void>;
  /** Throws BlobNotFoundError. */
  open(name: string): Promise<BlobReader>;
  exists(name: string): Promise<boolean>;
  /** Throws BlobNotFoundError. */
  size(name: string): Promise<number>;
  /** A missing object is fine. */
  delete(name: string): Promise<void>;
  deletePrefix(prefix: string): Promise<void>;
  /** Names of the objects under `prefix`, sorted. */
  list(prefix: string): Promise<string[]>;
  /** Readiness: writes a small object the way `put` does (durably), and deletes it. Rejects if the store cannot take a write. */
  probe(): Promise<void>;
}

export class BlobNotFoundError extends Error {
  constructor(name: string) {
    super(`no blob named ${name}`);
    this.name = 'BlobNotFoundError';
  }
}

export class InvalidBlobNameError extends Error {
  constructor() {
    super('invalid blob name');
    this.name = 'InvalidBlobNameError';
  }
}

const NAME_RE = /^[a-z0-9][a-z0-9._-]*(\/[a-z0-9][a-z0-9._-]*)*$/;
const MAX_NAME = 200;

export function isValidBlobName(name: unknown): name is string {
  return typeof name === 'string' && name.length <= MAX_NAME && NAME_RE.test(name) && !name.split('/').includes('..');
}

function checkName(name: unknown): string {
  if (!isValidBlobName(name)) throw new InvalidBlobNameError();
  return name;
}

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
/** Temporary files start with a dot: never a valid name, so never listed, opened or mistaken for an object. */
const TMP_PREFIX = '.tmp-';

const isCode = (err: unknown, ...codes: string[]) => codes.includes((err as NodeJS.ErrnoException | null)?.code ?? '');

async function writeAll(fh: FileHandle, buf: Buffer): Promise<void> {
  if (!Buffer.isBuffer(buf)) throw new TypeError('blob data must be Buffers');
  let at = 0;
  while (at < buf.length) {
    const { bytesWritten } = await fh.write(buf, at, buf.length - at);
    at += bytesWritten;
  }
}

/** How long an object's file stays open once no reader holds it (the next range request of a replay reuses it). */
const HANDLE_IDLE_MS = 2000;

/**
 * For tests that must decide when an open lands (its completion races a put or another reader):
 * `openFile` receives the real open and returns its outcome, whenever it likes.
 */
export interface LocalBlobStoreHooks {
  openFile?: <T>(name: string, open: () => Promise<T>) => Promise<T>;
}

export function createLocalBlobStore(root: string, hooks: LocalBlobStoreHooks = {}): BlobStore {
  const base = path.resolve(root);

  const pathOf = (name: string): string => {
    const p = path.join(base, ...checkName(name).split('/'));
    // Belt and braces: the name check already makes this impossible.
    if (!p.startsWith(base + path.sep)) throw new InvalidBlobNameError();
    return p;
  };

  const fsyncDir = async (dir: string) => {
    let fh: FileHandle | undefined;
    try {
      fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
      await fh.sync();
    } catch (err) {
      // Some file systems cannot fsync a directory; the rename itself is still atomic.
      if (!isCode(err, 'EINVAL', 'ENOTSUP', 'EISDIR', 'EPERM', 'EBADF')) throw err;
    } finally {
      await fh?.close();
    }
  };

  const statFile = async (name: string) => {
    try {
      const st = await lstat(pathOf(name)); // a symlink is not an object (open refuses it too)
      return st.isFile() ? st : null;
    } catch (err) {
      if (isCode(err, 'ENOENT', 'ENOTDIR')) return null;
      throw err;
    }
  };

  async function walk(dir: string, prefix: string, out: string[]): Promise<void> {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (isCode(err, 'ENOENT', 'ENOTDIR')) return;
      throw err;
    }
    for (const e of entries) {
      const name = prefix ? `${prefix}/${e.name}` : e.name;
      if (!isValidBlobName(name)) continue; // tmp files (leading dot) and anything foreign
      if (e.isDirectory()) await walk(path.join(dir, e.name), name, out);
      else if (e.isFile()) out.push(name);
    }
  }

  /**
   * Open files, shared by every reader of the same object (a replay's seeks, its range requests,
   * several viewers): one open and one stat per object rather than per request, and one file
   * descriptor for a recording however many streams read it (reads are positional). A put or a
   * delete of the name retires its entry: readers that have it keep what they opened (as with
   * separate opens), new readers open the new file (or get BlobNotFoundError). A file no reader
   * holds is closed after HANDLE_IDLE_MS.
   */
  interface OpenFile {
    fh: FileHandle;
    size: number;
    readers: number;
    /** Replaced or deleted since it was opened: closed as soon as no reader holds it. */
    retired: boolean;
    idle: NodeJS.Timeout | null;
  }
  /** The current open file of each name (all bookkeeping here is synchronous). */
  const files = new Map<string, OpenFile>();
  /** Opens in flight; one that a put or delete of its name overtook is retired when it lands. */
  const opening = new Map<string, { promise: Promise<OpenFile>; overtaken: boolean; waiters: number }>();

  const openFile = async (name: string): Promise<OpenFile> => {
    let fh: FileHandle;
    try {
      fh = await open(pathOf(name), constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      if (isCode(err, 'ENOENT', 'ENOTDIR', 'ELOOP')) throw new BlobNotFoundError(name);
      throw err;
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new BlobNotFoundError(name);
      return { fh, size: st.size, readers: 0, retired: false, idle: null };
    } catch (err) {
      await fh.close();
      throw err;
    }
  };

  const take = (entry: OpenFile): OpenFile => {
    if (entry.idle) {
      clearTimeout(entry.idle);
      entry.idle = null;
    }
    entry.readers++;
    return entry;
  };

  const handleFor = async (name: string): Promise<OpenFile> => {
    const current = files.get(name);
    if (current) return take(current);
    let pending = opening.get(name);
    if (!pending) {
      const opened = hooks.openFile ? hooks.openFile(name, () => openFile(name)) : openFile(name);
      const open: { promise: Promise<OpenFile>; overtaken: boolean; waiters: number } = { promise: opened, overtaken: false, waiters: 0 };
      pending = open;
      // Everyone waiting is counted as a reader the moment the file is open, so that nothing (a
      // retire, an idle close) can close it before they have it. In the same step the open stops
      // taking waiters: one that joined after this count (another chain's microtask running before
      // a separate clean-up) would hold the file uncounted, and it could close under it.
      const done = () => {
        if (opening.get(name) === open) opening.delete(name);
      };
      open.promise = open.promise.then(
        (entry) => {
          done();
          entry.readers = open.waiters;
          if (open.overtaken) entry.retired = true;
          else files.set(name, entry);
          return entry;
        },
        (err: unknown) => {
          done();
          throw err;
        },
      );
      opening.set(name, open);
    }
    pending.waiters++;
    return pending.promise;
  };

  const release = async (name: string, entry: OpenFile): Promise<void> => {
    entry.readers--;
    if (entry.readers > 0) return;
    if (entry.retired) {
      await entry.fh.close().catch(() => undefined);
      return;
    }
    entry.idle = setTimeout(() => {
      entry.idle = null;
      if (entry.readers === 0 && files.get(name) === entry) {
        files.delete(name);
        void entry.fh.close().catch(() => undefined);
      }
    }, HANDLE_IDLE_MS);
    entry.idle.unref();
  };

  /** The file behind these names changed or went: new readers open it afresh. */
  const retire = async (match: (name: string) => boolean) => {
    const closing: Promise<void>[] = [];
    for (const name of new Set([...files.keys(), ...opening.keys()])) {
      if (!match(name)) continue;
      const inFlight = opening.get(name);
      if (inFlight) inFlight.overtaken = true;
      const entry = files.get(name);
      if (!entry) continue;
      files.delete(name);
      entry.retired = true;
      if (entry.readers === 0) {
        if (entry.idle) clearTimeout(entry.idle);
        entry.idle = null;
        closing.push(entry.fh.close().catch(() => undefined));
      }
    }
    await Promise.all(closing);
  };

  return {
    async probe() {
      const name = `readiness-probe/${randomBytes(8).toString('hex')}`;
      await this.put(name, randomBytes(16));
      await this.delete(name);
    },

    async put(name, data) {
      const target = pathOf(name);
      const dir = path.dirname(target);
      await mkdir(dir, { recursive: true, mode: DIR_MODE });
      const tmp = path.join(dir, `${TMP_PREFIX}${path.basename(target)}-${randomBytes(8).toString('hex')}`);
      const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, FILE_MODE);
      let renamed = false;
      try {
        if (Buffer.isBuffer(data)) await writeAll(fh, data);
        else for await (const chunk of data) await writeAll(fh, chunk);
        await fh.sync();
        await fh.close();
        await rename(tmp, target);
        renamed = true;
        await retire((n) => n === name);
        await fsyncDir(dir);
      } catch (err) {
        await fh.close().catch(() => undefined);
        if (!renamed) await unlink(tmp).catch(() => undefined);
        throw err;
      }
    },

    async open(name) {
      const entry = await handleFor(name);
      let closed: Promise<void> | null = null;
      const { fh, size } = entry;
      const readInto = async (target: Buffer, offset: number): Promise<number> => {
        if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError('offset must be a non-negative integer');
        if (closed) throw new Error('blob reader is closed');
        const want = Math.max(0, Math.min(target.length, size - offset));
        let got = 0;
        while (got < want) {
          const { bytesRead } = await fh.read(target, got, want - got, offset + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        return got;
      };
      return {
        size: async () => size,
        async read(offset, length) {
          if (!Number.isSafeInteger(length) || length < 0) throw new RangeError('length must be a non-negative integer');
          const want = Math.max(0, Math.min(length, size - offset));
          const buf = Buffer.allocUnsafe(want);
          const got = await readInto(buf, offset);
          return got === want ? buf : buf.subarray(0, got);
        },
        readInto: (target, offset) => readInto(target, offset),
        fd: fh.fd,
        close() {
          closed ??= release(name, entry);
          return closed;
        },
      };
    },

    async exists(name) {
      return (await statFile(name)) !== null;
    },

    async size(name) {
      const st = await statFile(name);
      if (!st) throw new BlobNotFoundError(name);
      return st.size;
    },

    async delete(name) {
      try {
        await unlink(pathOf(name));
      } catch (err) {
        if (!isCode(err, 'ENOENT', 'ENOTDIR')) throw err;
      } finally {
        await retire((n) => n === name);
      }
    },

    async deletePrefix(prefix) {
      // rm -r of the prefix's directory (or the single object of that name). Leftover tmp files there go too.
      await rm(pathOf(prefix), { recursive: true, force: true });
      await retire((n) => n === prefix || n.startsWith(`${prefix}/`));
    },

    async list(prefix) {
      const out: string[] = [];
      if (prefix === '') {
        await walk(base, '', out);
      } else {
        const p = pathOf(prefix);
        const st = await statFile(prefix);
        if (st) out.push(prefix);
        else await walk(p, prefix, out);
      }
      return out.sort();
    },
  };
}
