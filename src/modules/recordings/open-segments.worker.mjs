// Reads and opens sealed recording segments off the main thread (see segment-opener.ts). Plain
// JavaScript: a worker thread has no TypeScript loader. It keeps nothing of a job once it has
// answered but its read buffer, which holds only sealed bytes (ciphertext) and is overwritten by
// the next read.
import { createDecipheriv } from 'node:crypto';
import { readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';

const IV_BYTES = 12;
const TAG_BYTES = 16;

let scratch = Buffer.alloc(0);

/**
 * job: { id, key: Uint8Array (32, transferred here: wiped after the job), aad: Uint8Array (the
 *   recording's AAD; segment index and last flag written at aadAt), aadAt,
 *   read: { fd, position, length } (the caller keeps the file open until the job has answered),
 *   segments: flat array of [index, isLast (0/1), sealedLength, skip, take],
 *   output: SharedArrayBuffer, outputOffset (the caller does not touch it until the job has answered) }
 * The sealed bytes are read, then each segment is opened and its tag verified (final()) before
 * any of its bytes are copied out; plaintext bytes [skip, skip + take) of each segment, one
 * segment after another, are written to the output.
 * Answer: { id, filled } or { id, failed: segment index } (a segment failed its integrity check)
 * or { id, truncated: true } (the file ended early) or { id, error }.
 */
parentPort.on('message', (job) => {
  const key = Buffer.from(job.key.buffer, job.key.byteOffset, job.key.byteLength);
  try {
    const { fd, position, length } = job.read;
    if (scratch.length < length) scratch = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const n = readSync(fd, scratch, got, length - got, position + got);
      if (n === 0) break;
      got += n;
    }
    if (got !== length) {
      parentPort.postMessage({ id: job.id, truncated: true });
      return;
    }
    const s = job.segments;
    let total = 0;
    for (let i = 4; i < s.length; i += 5) total += s[i];
    const out = Buffer.from(job.output, job.outputOffset, total);
    const aad = Buffer.from(job.aad.buffer, job.aad.byteOffset, job.aad.byteLength);
    let at = 0;
    let filled = 0;
    for (let i = 0; i < s.length; i += 5) {
      const index = s[i];
      const sealedLength = s[i + 2];
      const skip = s[i + 3];
      const take = s[i + 4];
      if (sealedLength < IV_BYTES + TAG_BYTES || at + sealedLength > length) {
        parentPort.postMessage({ id: job.id, failed: index });
        return;
      }
      aad.writeUInt32BE(index, job.aadAt);
      aad[job.aadAt + 4] = s[i + 1];
      const sealed = scratch.subarray(at, at + sealedLength);
      at += sealedLength;
      const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
      decipher.setAAD(aad);
      decipher.setAuthTag(sealed.subarray(sealedLength - TAG_BYTES));
      const plain = decipher.update(sealed.subarray(IV_BYTES, sealedLength - TAG_BYTES));
      try {
        decipher.final();
      } catch {
        plain.fill(0);
        parentPort.postMessage({ id: job.id, failed: index });
        return;
      }
      if (skip + take > plain.length) {
        // The job asked for bytes past the segment's end: a caller bug, refused whole (fill()
        // below would repeat the bytes it has rather than copy fewer).
        plain.fill(0);
        parentPort.postMessage({ id: job.id, error: `segment ${index}: bytes ${skip}+${take} asked of ${plain.length}` });
        return;
      }
      // Buffer#fill with a buffer of exactly the range's length is one native memcpy; copy() and
      // set() into shared memory go through V8's relaxed-atomic copy, at less than half the speed.
      if (take > 0) out.fill(plain.subarray(skip, skip + take), filled, filled + take);
      filled += take;
    }
    parentPort.postMessage({ id: job.id, filled });
  } catch (err) {
    parentPort.postMessage({ id: job.id, error: err instanceof Error ? err.message : String(err) });
  } finally {
    key.fill(0);
  }
});
