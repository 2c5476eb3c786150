/**
 * Recording keys: every recording has its own random 256-bit data key, stored only wrapped
 * (AES-256-GCM) under the master key from configuration, with the recording's id bound in, so a
 * wrapped key copied onto another recording's row does not open.
 *
 * The master key file holds the base64 encoding of exactly 32 random bytes (whitespace and a
 * trailing newline are fine), and must not be accessible to group or others (chmod 600).
 * Create one with: `node -e "console.log(require('crypto').randomBytes(32).toString('base64'))" > key && chmod 600 key`.
 *
 * Wrapped key = iv (12, random) | ciphertext (32) | tag (16) = 60 bytes,
 * AAD = 'confidant/recording-key/v1' | recording UUID (16 raw bytes).
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, mkdir, open, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { recordingIdBytes, TamperError } from './sealed-segments';

export interface MasterKey {
  /** 16 hex chars: the first 8 bytes of sha256('confidant-master-key-id' || key). Safe to store and log. */
  id: string;
  /** 32 bytes. */
  key: Buffer;
}

export type KeyFileProblem = 'missing' | 'unreadable' | 'permissions' | 'invalid';

export class KeyFileError extends Error {
  constructor(
    message: string,
    readonly problem: KeyFileProblem = 'invalid',
  ) {
    super(message);
    this.name = 'KeyFileError';
  }
}

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
export const WRAPPED_KEY_BYTES = IV_BYTES + KEY_BYTES + TAG_BYTES;
/** A key file is 45 bytes or so; anything much larger is not a key file (and is not read whole). */
const MAX_KEY_FILE_BYTES = 4096;
const WRAP_DOMAIN = Buffer.from('confidant/recording-key/v1', 'ascii');
const KEY_FORMAT = 'the base64 encoding of exactly 32 random bytes';

export function masterKeyId(key: Buffer): string {
  return createHash('sha256').update('confidant-master-key-id').update(key).digest().subarray(0, 8).toString('hex');
}

/** Parses a master key file's content. Error messages never include the content. */
export function parseMasterKey(text: string): MasterKey {
  return parseKeyText(text, 'the recording master key file');
}

function parseKeyText(text: string, what: string): MasterKey {
  const b64 = text.replace(/\s+/g, '');
  if (b64.length === 0) throw new KeyFileError(`${what} is empty; it must hold ${KEY_FORMAT}`);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0) {
    throw new KeyFileError(`${what} is not valid base64; it must hold ${KEY_FORMAT}`);
  }
  const key = Buffer.from(b64, 'base64');
  if (key.length !== KEY_BYTES) {
    key.fill(0);
    throw new KeyFileError(`${what} decodes to ${key.length} bytes; it must hold ${KEY_FORMAT}`);
  }
  if (key.toString('base64') !== b64) {
    key.fill(0);
    throw new KeyFileError(`${what} is not canonical base64; it must hold ${KEY_FORMAT}`);
  }
  return { id: masterKeyId(key), key };
}

const errCode = (err: unknown) => (err as NodeJS.ErrnoException | null)?.code;

/**
 * Reads and checks the master key file. KeyFileError if it is missing, unreadable, not a regular
 * file, accessible to group or others, or not a key.
 */
export async function readMasterKeyFile(file: string): Promise<MasterKey> {
  let fh: FileHandle;
  try {
    fh = await open(file, constants.O_RDONLY);
  } catch (err) {
    const code = errCode(err);
    if (code === 'ENOENT') throw new KeyFileError(`the recording master key file ${file} does not exist`, 'missing');
    if (code === 'EACCES' || code === 'EPERM') throw new KeyFileError(`the recording master key file ${file} cannot be read by this process (permission denied)`, 'unreadable');
    throw new KeyFileError(`the recording master key file ${file} cannot be opened (${code ?? 'error'})`, 'unreadable');
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new KeyFileError(`the recording master key file ${file} is not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      throw new KeyFileError(
        `the recording master key file ${file} is accessible to group or others (mode ${(st.mode & 0o777).toString(8).padStart(3, '0')}); run: chmod 600 ${file}`,
        'permissions',
      );
    }
    if (st.size > MAX_KEY_FILE_BYTES) throw new KeyFileError(`the recording master key file ${file} is too large to be a key; it must hold ${KEY_FORMAT}`);
    const buf = Buffer.alloc(MAX_KEY_FILE_BYTES + 1);
    let len = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, len, buf.length - len, len);
      if (bytesRead === 0) break;
      len += bytesRead;
      if (len > MAX_KEY_FILE_BYTES) throw new KeyFileError(`the recording master key file ${file} is too large to be a key; it must hold ${KEY_FORMAT}`);
    }
    const text = buf.toString('latin1', 0, len);
    buf.fill(0);
    return parseKeyText(text, `the recording master key file ${file}`);
  } catch (err) {
    if (err instanceof KeyFileError) throw err;
    throw new KeyFileError(`the recording master key file ${file} cannot be read (${errCode(err) ?? 'error'})`, 'unreadable');
  } finally {
    await fh.close();
  }
}

/**
 * Development and demo mode: reads the master key file, creating it first (parent directory
 * 0700, file 0600, fresh random key) if it does not exist. Creation is exclusive and the file
 * appears complete: the key is written to a private temporary file which is then hard-linked
 * to the name (link fails if the name exists), so two processes starting together end up with
 * the same key, and neither ever reads a half-written file.
 */
export async function ensureMasterKeyFile(file: string): Promise<MasterKey> {
  try {
    return await readMasterKeyFile(file);
  } catch (err) {
    if (!(err instanceof KeyFileError) || err.problem !== 'missing') throw err;
  }
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const key = randomBytes(KEY_BYTES);
  const content = `${key.toString('base64')}\n`;
  key.fill(0);
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeNew(tmp, content);
    try {
      await link(tmp, file);
    } catch (err) {
      const code = errCode(err);
      if (code === 'EEXIST') return await readMasterKeyFile(file); // another process won the race
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EXDEV') throw err;
      // A file system without hard links: create the file itself exclusively.
      try {
        await writeNew(file, content);
      } catch (err2) {
        if (errCode(err2) === 'EEXIST') return await readMasterKeyFile(file);
        throw err2;
      }
    }
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  return readMasterKeyFile(file);
}

async function writeNew(file: string, content: string): Promise<void> {
  const fh = await open(file, 'wx', 0o600);
  try {
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** A fresh random 256-bit data key. */
export function newDataKey(): Buffer {
  return randomBytes(KEY_BYTES);
}

function wrapAad(recordingId: string): Buffer {
  return Buffer.concat([WRAP_DOMAIN, recordingIdBytes(recordingId)]);
}

function checkMaster(master: MasterKey): void {
  if (!Buffer.isBuffer(master?.key) || master.key.length !== KEY_BYTES) throw new TypeError('a master key is 32 bytes');
}

/** Wraps a recording's data key under the master key: iv | ciphertext | tag (60 bytes). */
export function wrapDataKey(master: MasterKey, recordingId: string, dataKey: Buffer): Buffer {
  checkMaster(master);
  if (!Buffer.isBuffer(dataKey) || dataKey.length !== KEY_BYTES) throw new TypeError('a recording data key is 32 bytes');
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', master.key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(wrapAad(recordingId));
  const ct = Buffer.concat([cipher.update(dataKey), cipher.final()]);
  return Buffer.concat([iv, ct, cipher.getAuthTag()]);
}

/**
 * Unwraps a recording's data key. TamperError on any failure: wrong length, wrong master key,
 * another recording's id, a changed byte. (A malformed recording id is a caller bug: TypeError.)
 */
export function unwrapDataKey(master: MasterKey, recordingId: string, wrapped: Buffer): Buffer {
  checkMaster(master);
  const aad = wrapAad(recordingId);
  if (!Buffer.isBuffer(wrapped) || wrapped.length !== WRAPPED_KEY_BYTES) throw new TamperError('the wrapped recording key is malformed');
  try {
    const decipher = createDecipheriv('aes-256-gcm', master.key, wrapped.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(wrapped.subarray(IV_BYTES + KEY_BYTES));
    const key = decipher.update(wrapped.subarray(IV_BYTES, IV_BYTES + KEY_BYTES));
    try {
      decipher.final();
    } catch (err) {
      key.fill(0);
      throw err;
    }
    return key;
  } catch {
    throw new TamperError('the recording key could not be unwrapped (wrong master key, or the key does not belong to this recording)');
  }
}
