import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ensureMasterKeyFile,
  KeyFileError,
  newDataKey,
  parseMasterKey,
  readMasterKeyFile,
  unwrapDataKey,
  wrapDataKey,
  WRAPPED_KEY_BYTES,
  type MasterKey,
} from './recording-keys';
import { TamperError } from './sealed-segments';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'confidant-keys-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const b64 = (bytes: Buffer) => bytes.toString('base64');

/** Runs `fn`, expects a KeyFileError, and checks that its message does not leak `secret`. */
async function keyFileError(fn: () => unknown, secret: string): Promise<KeyFileError> {
  let caught: unknown;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(KeyFileError);
  const msg = (caught as KeyFileError).message;
  const trimmed = secret.trim().slice(0, 120);
  if (trimmed.length >= 4) {
    expect(msg).not.toContain(trimmed);
    // Not even a recognisable piece of it.
    for (let i = 0; i + 8 <= trimmed.length; i += 4) expect(msg).not.toContain(trimmed.slice(i, i + 8));
  }
  return caught as KeyFileError;
}

describe('parseMasterKey', () => {
  it('accepts base64 of 32 bytes with surrounding whitespace; the id is sha256-derived', () => {
    const key = randomBytes(32);
    const text = `  ${b64(key).slice(0, 20)}\n${b64(key).slice(20)}\r\n\n`;
    const mk = parseMasterKey(text);
    expect(mk.key.equals(key)).toBe(true);
    expect(mk.id).toMatch(/^[0-9a-f]{16}$/);
    const expected = createHash('sha256').update(Buffer.concat([Buffer.from('confidant-master-key-id'), key])).digest().subarray(0, 8).toString('hex');
    expect(mk.id).toBe(expected);
    expect(parseMasterKey(b64(key)).id).toBe(mk.id);
    expect(parseMasterKey(b64(randomBytes(32))).id).not.toBe(mk.id);
  });

  it('refuses bad base64, wrong lengths and empty content, without echoing it', async () => {
    const cases = [
      '',
      '   \n',
      'this is definitely not base64 !!!',
      `${b64(randomBytes(32)).slice(0, -1)}*`,
      b64(randomBytes(31)),
      b64(randomBytes(33)),
      b64(randomBytes(64)),
      b64(randomBytes(16)),
      b64(randomBytes(32)).replace(/=$/, ''), // unpadded
      Buffer.from(randomBytes(32)).toString('base64url').replace(/=$/, '') + '=', // url alphabet might slip in
      `-----BEGIN PRIVATE KEY-----\n${b64(randomBytes(48))}\n-----END PRIVATE KEY-----`,
    ];
    for (const text of cases) {
      // (the base64url case may by chance have no '-' or '_'; then it is a valid key, skip)
      if (/^[A-Za-z0-9+/]{43}=$/.test(text)) continue;
      await keyFileError(() => parseMasterKey(text), text);
    }
  });

  it('refuses non-canonical base64 (stray bits in the padding)', async () => {
    const good = b64(randomBytes(32)); // 44 chars, last before '=' carries 2 unused bits
    const last = good[42]!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const idx = alphabet.indexOf(last);
    const tweaked = good.slice(0, 42) + alphabet[idx ^ 1] + '=';
    await keyFileError(() => parseMasterKey(tweaked), tweaked);
  });
});

describe('readMasterKeyFile', () => {
  it('reads a 0600 key file', async () => {
    const key = randomBytes(32);
    const file = path.join(dir, 'master.key');
    await writeFile(file, `${b64(key)}\n`, { mode: 0o600 });
    const mk = await readMasterKeyFile(file);
    expect(mk.key.equals(key)).toBe(true);
  });

  it('refuses a file readable by group or others, telling to chmod 600, without echoing the key', async () => {
    const key = b64(randomBytes(32));
    const file = path.join(dir, 'master.key');
    await writeFile(file, key, { mode: 0o600 });
    for (const mode of [0o644, 0o640, 0o604, 0o660, 0o602, 0o610]) {
      await chmod(file, mode);
      const err = await keyFileError(() => readMasterKeyFile(file), key);
      expect(err.message).toContain('chmod 600');
      expect(err.problem).toBe('permissions');
    }
    await chmod(file, 0o400);
    expect((await readMasterKeyFile(file)).key.equals(Buffer.from(key, 'base64'))).toBe(true);
  });

  it('refuses bad content without echoing it', async () => {
    const file = path.join(dir, 'master.key');
    for (const content of ['hunter2-hunter2-hunter2', b64(randomBytes(31)), b64(randomBytes(40)), '']) {
      await writeFile(file, content, { mode: 0o600 });
      await chmod(file, 0o600);
      const err = await keyFileError(() => readMasterKeyFile(file), content);
      expect(err.problem).toBe('invalid');
      expect(err.message).toContain(file);
    }
  });

  it('refuses a huge file without reading it whole', async () => {
    const file = path.join(dir, 'master.key');
    const content = b64(randomBytes(100_000));
    await writeFile(file, content, { mode: 0o600 });
    await keyFileError(() => readMasterKeyFile(file), content);
  });

  it('a missing file or a directory is a KeyFileError', async () => {
    const missing = await keyFileError(() => readMasterKeyFile(path.join(dir, 'nope.key')), '');
    expect(missing.problem).toBe('missing');
    const sub = path.join(dir, 'sub');
    await mkdir(sub, { mode: 0o700 });
    await keyFileError(() => readMasterKeyFile(sub), '');
  });
});

describe('ensureMasterKeyFile', () => {
  it('creates the parent directory 0700 and the file 0600, and is stable across calls', async () => {
    const file = path.join(dir, 'data', 'keys', 'recording-master.key');
    const a = await ensureMasterKeyFile(file);
    expect(((await stat(file)).mode & 0o777).toString(8)).toBe('600');
    expect(((await stat(path.dirname(file))).mode & 0o777).toString(8)).toBe('700');
    expect(((await stat(path.join(dir, 'data'))).mode & 0o777).toString(8)).toBe('700');
    expect(a.key.length).toBe(32);
    const b = await ensureMasterKeyFile(file);
    const c = await readMasterKeyFile(file);
    expect(b.key.equals(a.key)).toBe(true);
    expect(c.id).toBe(a.id);
    expect((await readFile(file, 'utf8')).trim()).toBe(b64(a.key));
  });

  it('concurrent first calls agree on one key and leave no temporary files', async () => {
    const file = path.join(dir, 'keys', 'master.key');
    const keys = await Promise.all(Array.from({ length: 12 }, () => ensureMasterKeyFile(file)));
    for (const k of keys) expect(k.key.equals(keys[0]!.key)).toBe(true);
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(path.dirname(file))).toEqual(['master.key']);
  });

  it('does not overwrite or accept an existing bad or world-readable file', async () => {
    const file = path.join(dir, 'master.key');
    await writeFile(file, 'garbage', { mode: 0o600 });
    await keyFileError(() => ensureMasterKeyFile(file), 'garbage');
    expect(await readFile(file, 'utf8')).toBe('garbage');
    const key = b64(randomBytes(32));
    await writeFile(file, key);
    await chmod(file, 0o644);
    const err = await keyFileError(() => ensureMasterKeyFile(file), key);
    expect(err.message).toContain('chmod 600');
    expect(await readFile(file, 'utf8')).toBe(key);
  });
});

describe('data keys', () => {
  const master = (): MasterKey => parseMasterKey(b64(randomBytes(32)));

  it('newDataKey is 32 random bytes', () => {
    const a = newDataKey();
    expect(a.length).toBe(32);
    expect(a.equals(newDataKey())).toBe(false);
  });

  it('wrap/unwrap round trip; wrapping is randomised', () => {
    const m = master();
    const id = randomUUID();
    const dk = newDataKey();
    const w1 = wrapDataKey(m, id, dk);
    const w2 = wrapDataKey(m, id, dk);
    expect(w1.length).toBe(WRAPPED_KEY_BYTES);
    expect(w1.equals(w2)).toBe(false);
    expect(w1.includes(dk)).toBe(false);
    expect(unwrapDataKey(m, id, w1).equals(dk)).toBe(true);
    expect(unwrapDataKey(m, id.toUpperCase(), w2).equals(dk)).toBe(true);
  });

  it('unwrap with another recording id, another master key, a changed byte or a wrong length → TamperError', () => {
    const m = master();
    const id = randomUUID();
    const w = wrapDataKey(m, id, newDataKey());
    expect(() => unwrapDataKey(m, randomUUID(), w)).toThrow(TamperError);
    expect(() => unwrapDataKey(master(), id, w)).toThrow(TamperError);
    for (let i = 0; i < w.length; i++) {
      const bad = Buffer.from(w);
      bad[i]! ^= 0x01;
      expect(() => unwrapDataKey(m, id, bad)).toThrow(TamperError);
    }
    expect(() => unwrapDataKey(m, id, w.subarray(0, w.length - 1))).toThrow(TamperError);
    expect(() => unwrapDataKey(m, id, Buffer.concat([w, Buffer.alloc(1)]))).toThrow(TamperError);
    expect(() => unwrapDataKey(m, id, Buffer.alloc(0))).toThrow(TamperError);
  });

  it('refuses to wrap something that is not a 32-byte key', () => {
    expect(() => wrapDataKey(master(), randomUUID(), randomBytes(16))).toThrow(TypeError);
    expect(() => wrapDataKey({ id: 'x', key: randomBytes(16) }, randomUUID(), newDataKey())).toThrow(TypeError);
    expect(() => wrapDataKey(master(), 'recording-1', newDataKey())).toThrow(TypeError);
  });
});
