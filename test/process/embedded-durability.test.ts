import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { onPostgres } from '../harness';
import { post, seededDataDir, startServer, type Running } from './spawn';

// Issue 13: "A test fails if a commit is acknowledged with no flush after its write." The real
// server runs under strace; every write to the write-ahead log must be followed by an fsync or
// fdatasync of that WAL file before the HTTP answer acknowledging the commit is written to the
// socket. Seen from outside the process, whatever thread PGlite runs on.
const hasStrace = spawnSync('strace', ['-V']).status === 0;
const scratch = mkdtempSync(path.join(tmpdir(), 'confidant-durable-'));
const cleanups: string[] = [];
afterAll(() => {
  for (const dir of [scratch, ...cleanups]) rmSync(dir, { recursive: true, force: true });
});

const WRITES = 8;
const patient = (i: number) => ({
  givenName: 'Durable', familyName: `Commit${i}`, dateOfBirth: '1980-02-02', email: `durable${i}@example.test`, password: 'tidal-granite-orchard-55',
});

/** One line of `strace -f -yy` output that matters here, in the order strace saw it. */
type Event =
  | { kind: 'wal-write'; file: string }
  | { kind: 'wal-sync'; file: string }
  | { kind: 'answer'; status: number };

/**
 * Writes count from their start (the bytes may reach the file or the socket from then on); a
 * flush counts from its successful end. A call interrupted by another thread's shows as
 * `<unfinished ...>` and, later, `<... fdatasync resumed>) = 0`.
 */
function parseTrace(text: string, port: number): Event[] {
  const events: Event[] = [];
  const syncing = new Map<string, string>(); // thread → the file its unfinished flush is on
  const WAL_WRITE = /^\d+\s+(?:pwrite64|pwritev2?|write|writev)\(\d+<([^>]*\/pg_wal\/[0-9A-F]{24})>/;
  const SYNC = /^(\d+)\s+f(?:data)?sync\(\d+<([^>]*)>(?:\)\s*=\s*(-?\d+)|\s*<unfinished \.\.\.>)/;
  const RESUMED = /^(\d+)\s+<\.\.\. f(?:data)?sync resumed>\)\s*=\s*(-?\d+)/;
  const ANSWER = new RegExp(`^\\d+\\s+(?:write|writev|sendto|sendmsg)\\(\\d+<TCPv?6?:\\[[^\\]]*:${port}->[^\\]]*\\]>,\\s*(?:\\[\\{iov_base=)?"HTTP/1\\.1 (\\d{3})`);
  const wal = (file: string) => /\/pg_wal\/[0-9A-F]{24}$/.test(file);
  for (const line of text.split('\n')) {
    let m = WAL_WRITE.exec(line);
    if (m) {
      events.push({ kind: 'wal-write', file: m[1]! });
      continue;
    }
    m = SYNC.exec(line);
    if (m) {
      if (m[3] === undefined) syncing.set(m[1]!, m[2]!);
      else if (m[3] === '0' && wal(m[2]!)) events.push({ kind: 'wal-sync', file: m[2]! });
      continue;
    }
    m = RESUMED.exec(line);
    if (m) {
      const file = syncing.get(m[1]!);
      syncing.delete(m[1]!);
      if (file && m[2] === '0' && wal(file)) events.push({ kind: 'wal-sync', file });
      continue;
    }
    m = ANSWER.exec(line);
    if (m) events.push({ kind: 'answer', status: Number(m[1]) });
  }
  return events;
}

/** For each 201 answer: the WAL writes and flushes since the previous one, and what was still unflushed when it was sent. */
function acknowledgedCommits(events: Event[]) {
  const dirty = new Set<string>();
  const acks: { walWrites: number; walSyncs: number; unflushed: string[] }[] = [];
  let walWrites = 0;
  let walSyncs = 0;
  for (const e of events) {
    if (e.kind === 'wal-write') {
      dirty.add(e.file);
      walWrites++;
    } else if (e.kind === 'wal-sync') {
      dirty.delete(e.file);
      walSyncs++;
    } else if (e.status === 201) {
      acks.push({ walWrites, walSyncs, unflushed: [...dirty] });
      walWrites = 0;
      walSyncs = 0;
    }
  }
  return acks;
}

/** The server itself: strace's child. */
function tracee(strace: Running): number | undefined {
  try {
    const pid = Number(readFileSync(`/proc/${strace.child.pid}/task/${strace.child.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

describe.skipIf(onPostgres || !hasStrace)('embedded database durability under strace (PGlite)', () => {
  it('flushes the WAL of every commit before acknowledging it', { timeout: 300_000 }, async () => {
    // An existing database (no initdb under strace): this is about commits, not a first start.
    const dataDir = await seededDataDir('confidant-durable-data-');
    cleanups.push(dataDir);
    const trace = path.join(scratch, 'trace.txt');
    const s = await startServer({ DATA_DIR: dataDir }, 180_000, [
      'strace', '-f', '--seccomp-bpf', '-yy', '-s', '48', '-o', trace,
      '-e', 'trace=pwrite64,pwritev,pwritev2,write,writev,fsync,fdatasync,sendto,sendmsg',
    ]);
    const port = Number(new URL(s.url).port);
    const server = tracee(s);
    try {
      expect(server, 'the server runs under strace').toBeDefined();
      for (let i = 0; i < WRITES; i++) {
        const r = await post(`${s.url}/api/auth/register`, patient(i));
        expect(r.status).toBe(201);
      }
    } finally {
      // strace blocks fatal signals while it traces a command it started: stop the server itself.
      if (server) process.kill(server, 'SIGTERM');
      else s.child.kill('SIGKILL');
    }
    expect((await s.exited).code, s.output()).toBe(0);

    const acks = acknowledgedCommits(parseTrace(readFileSync(trace, 'utf8'), port));
    expect(acks).toHaveLength(WRITES);
    for (const [i, ack] of acks.entries()) {
      // Each registration committed (wrote WAL) and flushed it …
      expect(ack.walWrites, `registration ${i} wrote to the WAL`).toBeGreaterThan(0);
      expect(ack.walSyncs, `registration ${i} flushed the WAL before its answer`).toBeGreaterThan(0);
      // … and nothing written to the WAL was still unflushed when its answer went out.
      expect(ack.unflushed, `registration ${i} was acknowledged with WAL writes not yet flushed`).toEqual([]);
    }
  });
});

describe('the strace reader', () => {
  const port = 39123;
  const wal = '/d/pglite/pg_wal/000000010000000000000001';
  const lines = (...l: string[]) => l.join('\n');
  it('sees a flush between the WAL write and the answer, also across interrupted calls', () => {
    const ok = lines(
      `10 pwrite64(28<${wal}>, "\\30\\321"..., 163, 100) = 163`,
      `10 fdatasync(28<${wal}> <unfinished ...>`,
      `11 write(27<anon_inode:[eventfd]>, "\\1\\0", 8) = 8`,
      `10 <... fdatasync resumed>) = 0`,
      `11 writev(147<TCP:[127.0.0.1:${port}->127.0.0.1:39186]>, [{iov_base="HTTP/1.1 201 Created\\r\\n"..., iov_len=959}], 2) = 959`,
    );
    expect(acknowledgedCommits(parseTrace(ok, port))).toEqual([{ walWrites: 1, walSyncs: 1, unflushed: [] }]);
  });

  it('catches an answer sent before the flush, or with none', () => {
    const late = lines(
      `10 pwrite64(28<${wal}>, "\\30\\321"..., 163, 100) = 163`,
      `11 write(147<TCP:[127.0.0.1:${port}->127.0.0.1:39186]>, "HTTP/1.1 201 Created\\r\\n"..., 959) = 959`,
      `10 fdatasync(28<${wal}>) = 0`,
      `10 pwrite64(28<${wal}>, "\\30\\321"..., 163, 300) = 163`,
      `11 write(148<TCP:[127.0.0.1:${port}->127.0.0.1:39188]>, "HTTP/1.1 201 Created\\r\\n"..., 959) = 959`,
    );
    expect(acknowledgedCommits(parseTrace(late, port))).toEqual([
      { walWrites: 1, walSyncs: 0, unflushed: [wal] },
      { walWrites: 1, walSyncs: 1, unflushed: [wal] },
    ]);
    // A failed flush flushes nothing; a flush of a data file is not the WAL's.
    const failed = lines(
      `10 pwrite64(28<${wal}>, "\\30\\321"..., 163, 100) = 163`,
      `10 fdatasync(28<${wal}>) = -1 EIO (Input/output error)`,
      `10 fdatasync(29</d/pglite/base/5/16390>) = 0`,
      `11 write(147<TCP:[127.0.0.1:${port}->127.0.0.1:39186]>, "HTTP/1.1 201 Created\\r\\n"..., 959) = 959`,
    );
    expect(acknowledgedCommits(parseTrace(failed, port))).toEqual([{ walWrites: 1, walSyncs: 0, unflushed: [wal] }]);
  });
});
