/**
 * bench:replay: the kernel's TCP memory limit (net.ipv4.tcp_mem) raised for the run where we may,
 * and put back afterwards. Both ends of every stream live on this machine, so 2,000 streams are
 * 4,000 sockets, and the default limit (about a tenth of RAM: 2.2 GiB here) runs out even for
 * plain Node; past it the kernel drops packets and the streams stall for reasons of its own.
 *
 * Only ever raised, never lowered; put back by `restoreTcpMem` (the bench's cleanup, which runs on
 * success, failure, SIGINT/SIGTERM and its own timeout) and, as a last resort, on process exit.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const FILE = '/proc/sys/net/ipv4/tcp_mem';
/** tcp_mem counts pages: 4 KiB here (as the rest of this bench assumes). */
const PAGE = 4096;

export type TcpMemChange = { raised: true; fromPages: number[]; toPages: number[] } | { raised: false; why: string };

let original: string | null = null;

function readPages(): number[] {
  const pages = readFileSync(FILE, 'utf8').trim().split(/\s+/).map(Number);
  if (pages.length !== 3 || pages.some((p) => !Number.isSafeInteger(p) || p <= 0)) throw new Error(`unexpected ${FILE}: ${pages.join(' ')}`);
  return pages;
}

export const pagesToMiB = (pages: number) => Math.round((pages * PAGE) / 1048576);

/** Raises the limit (the third figure) to `maxBytes`, capped at half the RAM, and the pressure threshold to ¾ of it. */
export function raiseTcpMem(maxBytes: number): TcpMemChange {
  let from: number[];
  try {
    from = readPages();
  } catch (err) {
    return { raised: false, why: `cannot read ${FILE} (${(err as Error).message})` };
  }
  const uid = process.getuid?.();
  if (uid !== 0) return { raised: false, why: `not running as root (uid ${uid ?? 'unknown'}); raise it by hand: sysctl -w net.ipv4.tcp_mem=…` };
  const max = Math.ceil(Math.min(maxBytes, os.totalmem() / 2) / PAGE);
  if (from[2]! >= max) return { raised: false, why: `already ${pagesToMiB(from[2]!)} MiB, enough` };
  const to = [from[0]!, Math.max(from[1]!, Math.floor((max * 3) / 4)), max];
  try {
    writeFileSync(FILE, to.join(' '));
  } catch (err) {
    return { raised: false, why: `cannot write ${FILE} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
  }
  original = from.join(' ');
  process.once('exit', restoreTcpMem);
  const now = readPages();
  if (now.join(' ') !== to.join(' ')) {
    restoreTcpMem();
    return { raised: false, why: `the kernel kept ${now.join(' ')} after writing ${to.join(' ')}` };
  }
  return { raised: true, fromPages: from, toPages: to };
}

/** Puts back what `raiseTcpMem` and `capSocketBuffers` replaced (if anything). Synchronous and idempotent. */
export function restoreTcpMem(): void {
  restoreSocketBuffers();
  if (original === null) return;
  const value = original;
  original = null;
  try {
    writeFileSync(FILE, value);
    console.log(`[bench:replay] net.ipv4.tcp_mem restored to ${value} pages`);
  } catch (err) {
    console.error(`[bench:replay] could not restore net.ipv4.tcp_mem to "${value}": ${(err as Error).message}; run: sysctl -w net.ipv4.tcp_mem="${value}"`);
  }
}

/**
 * Socket buffers for the paced streams. Over loopback the kernel grows a socket's buffers up to
 * tcp_rmem / tcp_wmem's maximum (32 MiB and 4 MiB on these machines), so a player that pauses
 * reading (as a media element does once it holds enough) still has tens of megabytes pushed into
 * its socket at full speed: minutes of media at 1 Mbit/s per stream, bought from the server at
 * every stream opened and every seek. Over a real network a 1 Mbit/s stream's window stays near
 * its bandwidth-delay product. So for the streams part (both the route and the plain-Node
 * control) the bench caps both maxima at `maxBytes` (new sockets; raised back afterwards).
 * Only ever lowered here, never raised.
 */
const BUFFER_FILES = ['/proc/sys/net/ipv4/tcp_rmem', '/proc/sys/net/ipv4/tcp_wmem'] as const;
const buffersOriginal = new Map<string, string>();

export type SocketBufferChange = { capped: true; from: string[]; to: string[] } | { capped: false; why: string };

export function capSocketBuffers(maxBytes: number): SocketBufferChange {
  const uid = process.getuid?.();
  if (uid !== 0) return { capped: false, why: `not running as root (uid ${uid ?? 'unknown'})` };
  const from: string[] = [];
  const to: string[] = [];
  try {
    for (const file of BUFFER_FILES) {
      const v = readFileSync(file, 'utf8').trim().split(/\s+/).map(Number);
      if (v.length !== 3 || v.some((x) => !Number.isSafeInteger(x) || x <= 0)) throw new Error(`unexpected ${file}: ${v.join(' ')}`);
      const max = Math.min(v[2]!, maxBytes);
      const next = [Math.min(v[0]!, max), Math.min(v[1]!, max), max];
      from.push(v.join(' '));
      to.push(next.join(' '));
    }
    BUFFER_FILES.forEach((file, i) => {
      if (from[i] === to[i]) return;
      buffersOriginal.set(file, from[i]!);
      process.once('exit', restoreSocketBuffers);
      writeFileSync(file, to[i]!);
    });
  } catch (err) {
    restoreSocketBuffers();
    return { capped: false, why: (err as Error).message };
  }
  return { capped: true, from, to };
}

/** Puts tcp_rmem / tcp_wmem back. Synchronous and idempotent. */
export function restoreSocketBuffers(): void {
  for (const [file, value] of buffersOriginal) {
    buffersOriginal.delete(file);
    const name = `net.ipv4.${path.basename(file)}`;
    try {
      writeFileSync(file, value);
      console.log(`[bench:replay] ${name} restored to ${value}`);
    } catch (err) {
      console.error(`[bench:replay] could not restore ${name} to "${value}": ${(err as Error).message}; run: sysctl -w ${name}="${value}"`);
    }
  }
}
