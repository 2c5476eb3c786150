import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
// The bench's recording maker: a valid webm of any size, random content (bench/lib/replay-setup.ts).
import { synthesiseWebm } from '../../bench/lib/replay-setup';
import type { TxPrincipal } from '../../src/db';
import type { BlobReader, BlobStore } from '../../src/modules/recordings/blob-store';
import { recordingBlobName } from '../../src/modules/recordings/recordings';
import { SEALED_SEGMENT_SIZE } from '../../src/modules/recordings/sealed-segments';
import type { TestService } from '../harness';
import { latestAuditEvents, restoreKilledFeatures } from '../fixtures';
import { liveConsultation, recordClip, startConsultationService, type LiveConsultation } from './support';

// The replay route opens the recording (and reads and checks its first segment) while the play
// event is being made durable. Not a byte goes out before the event is durable; if it cannot be
// written, or the viewer leaves before the answer, whatever was opened is closed again, and a
// viewer who left is audited as having received nothing.

/**
 * Watches the service's real blob store: which readers were opened, how many of their reads
 * finished, which were closed again; and lets a test hold an open until it says so.
 */
function watchBlobs(blobs: BlobStore) {
  const realOpen = blobs.open.bind(blobs);
  const watch = {
    opened: 0,
    reads: 0,
    closed: new Set<BlobReader>(),
    /** While set, an open waits for it; `entered` tells the test an open is waiting. */
    gate: null as Promise<void> | null,
    entered: null as (() => void) | null,
  };
  blobs.open = async (name) => {
    if (watch.gate) {
      watch.entered?.();
      await watch.gate;
    }
    const reader = await realOpen(name);
    watch.opened++;
    const realClose = reader.close.bind(reader);
    reader.close = async () => {
      watch.closed.add(reader);
      await realClose();
    };
    const read = reader.read.bind(reader);
    reader.read = (offset, length) => read(offset, length).finally(() => watch.reads++);
    if (reader.readInto) {
      const readInto = reader.readInto.bind(reader);
      reader.readInto = (target, offset) => readInto(target, offset).finally(() => watch.reads++);
    }
    return reader;
  };
  return watch;
}

/** Holds the service's transactions that `which` picks until `release` is called. */
function holdTransactions(service: TestService, which: (principal: TxPrincipal, readOnly: boolean) => boolean) {
  const db = service.db;
  const transaction = db.transaction.bind(db);
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let entered = 0;
  db.transaction = ((principal, fn, o) => {
    if (!which(principal, o?.readOnly ?? false)) return transaction(principal, fn, o);
    entered++;
    return held.then(() => transaction(principal, fn, o));
  }) as typeof db.transaction;
  return {
    entered: () => entered,
    release: () => {
      db.transaction = transaction;
      release();
    },
  };
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function playEvents(service: TestService, recordingId: string) {
  const events = await latestAuditEvents(service, 50);
  return events.filter((e) => e.object_id === recordingId && /^recording\.(play|integrity)/.test(String(e.action))).reverse();
}

async function recorded(service: TestService, clip?: Parameters<typeof recordClip>[2]): Promise<{ c: LiveConsultation; id: string }> {
  const c = await liveConsultation(service);
  const id = clip ? await recordClip(service, c, clip, 4) : await recordClip(service, c);
  return { c, id };
}

describe('a viewer who leaves before the answer', () => {
  let service: TestService;
  let port: number;

  beforeAll(async () => {
    service = await startConsultationService();
    await service.built.app.listen({ port: 0, host: '127.0.0.1' });
    port = (service.built.app.server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await service?.close();
  });

  /** The media over a raw socket; `answered()` counts what came back. */
  function rawGet(c: LiveConsultation, id: string) {
    const sock = net.connect(port, '127.0.0.1');
    let answered = 0;
    sock.on('data', (b) => (answered += b.length));
    sock.on('error', () => undefined);
    sock.write(`GET /api/recordings/${id}/media HTTP/1.1\r\nhost: 127.0.0.1\r\ncookie: ${c.patient.client.cookie}\r\nrange: bytes=0-\r\n\r\n`);
    return { sock, answered: () => answered };
  }

  const closedOnServer = () =>
    until('the service to see the socket close', () => new Promise<boolean>((r) => service.built.app.server.getConnections((_e, n) => r(n === 0))));

  /** Exactly the play event and a cut-short event with nothing received; nothing sent, nothing logged as a failure. */
  async function expectAuditedAsNothingReceived(c: LiveConsultation, id: string, answered: () => number) {
    await until('the cut-short event', async () => (await playEvents(service, id)).some((e) => e.action === 'recording.play_cut_short'));
    await new Promise((r) => setTimeout(r, 50));
    const events = await playEvents(service, id);
    expect(events.map((e) => e.action)).toEqual(['recording.play', 'recording.play_cut_short']);
    expect(events[0]).toMatchObject({ actor_id: c.patient.id, patient_id: c.patient.id });
    expect(JSON.parse(String(events[1]!.details))).toEqual({ range: 'none', bytes: 0 });
    expect(answered()).toBe(0);
    expect(service.logs.join('')).not.toContain('request failed');
  }

  it('during the read: nothing is opened at all', async () => {
    const { c, id } = await recorded(service);
    const watch = watchBlobs(service.deps.recordings.blobs);
    const hold = holdTransactions(service, (p, readOnly) => readOnly && p.kind === 'patient');
    let answered!: () => number;
    try {
      const get = rawGet(c, id);
      answered = get.answered;
      const { sock } = get;
      await until('the read to be held', () => hold.entered() > 0);
      sock.destroy();
      await closedOnServer();
    } finally {
      hold.release();
    }
    await expectAuditedAsNothingReceived(c, id, answered);
    expect(watch.opened).toBe(0);
  });

  it('while the recording is being opened: it is closed again', async () => {
    const { c, id } = await recorded(service);
    const watch = watchBlobs(service.deps.recordings.blobs);
    let release!: () => void;
    watch.gate = new Promise<void>((r) => (release = r));
    const entered = new Promise<void>((r) => (watch.entered = r));
    const { sock, answered } = rawGet(c, id);
    await entered;
    sock.destroy();
    await closedOnServer();
    watch.gate = null;
    release();
    await expectAuditedAsNothingReceived(c, id, answered);
    await until('the reader to be closed', () => watch.opened === 1 && watch.closed.size === 1);
  });

  it('while the play event is being made durable, the first segment already read: it gets nothing sent', async () => {
    const { c, id } = await recorded(service);
    const watch = watchBlobs(service.deps.recordings.blobs);
    const hold = holdTransactions(service, (p) => p.reason === 'audit group commit');
    let answered!: () => number;
    try {
      const get = rawGet(c, id);
      answered = get.answered;
      await until('the first segment to be read', () => watch.reads >= 1);
      await new Promise((r) => setTimeout(r, 20));
      get.sock.destroy();
      await closedOnServer();
    } finally {
      hold.release();
    }
    await expectAuditedAsNothingReceived(c, id, answered);
    await until('the reader to be closed', () => watch.opened === 1 && watch.closed.size === 1);
  });

  // Not a viewer who left, but the same moment: the request's deadline passes while the play
  // event is being made durable.
  it('a deadline passing while the play event is made durable: 503 deadline_exceeded, sends nothing, closes what it opened and audits it as nothing received', async () => {
    const { c, id } = await recorded(service);
    const watch = watchBlobs(service.deps.recordings.blobs);
    const hold = holdTransactions(service, (p) => p.reason === 'audit group commit');
    const deadline = service.config.requestDeadlineMs;
    service.config.requestDeadlineMs = 500;
    let res: Response;
    try {
      res = await fetch(`http://127.0.0.1:${port}/api/recordings/${id}/media`, { headers: { cookie: c.patient.client.cookie!, range: 'bytes=0-' } });
    } finally {
      service.config.requestDeadlineMs = deadline;
      hold.release();
    }
    expect(res.status).toBe(503);
    expect((await res.json()).error.code).toBe('deadline_exceeded');
    await until('the cut-short event', async () => (await playEvents(service, id)).some((e) => e.action === 'recording.play_cut_short'));
    const events = await playEvents(service, id);
    expect(events.map((e) => e.action)).toEqual(['recording.play', 'recording.play_cut_short']);
    expect(JSON.parse(String(events[1]!.details))).toEqual({ range: 'none', bytes: 0, cutBy: 'deadline' });
    await until('the reader to be closed', () => watch.opened === 1 && watch.closed.size === 1);
  });
});

describe('damage found while the play event is being made durable', () => {
  let service: TestService;
  let port: number;

  beforeAll(async () => {
    service = await startConsultationService();
    await service.built.app.listen({ port: 0, host: '127.0.0.1' });
    port = (service.built.app.server.address() as AddressInfo).port;
  });

  /** A recording of several segments with one flipped byte in its second sealed segment. */
  async function damagedRecording() {
    const { c, id } = await recorded(service, Buffer.from(synthesiseWebm(400 * 1024).data));
    const blobs = service.deps.recordings.blobs;
    const reader = await blobs.open(recordingBlobName(id));
    const sealed = await reader.read(0, await reader.size());
    await reader.close();
    sealed[SEALED_SEGMENT_SIZE + 1000] = sealed[SEALED_SEGMENT_SIZE + 1000]! ^ 0x01;
    await blobs.put(recordingBlobName(id), sealed);
    return { c, id };
  }
  afterAll(async () => {
    await service?.close();
  });

  // Damage played is an integrity signal: the breach guard switches replays off; back on after each test.
  afterEach(async () => {
    await restoreKilledFeatures(service);
  });

  it('is answered as damage, with the alert and its audit event, never as a stream cut short', async () => {
    // The range below starts in the first segment, which is read and checked on its own; the batch
    // after it (read on while the event is held) is not intact.
    const { c, id } = await damagedRecording();

    const hold = holdTransactions(service, (p) => p.reason === 'audit group commit');
    let res!: Awaited<ReturnType<typeof c.patient.client.request>>;
    try {
      const answer = c.patient.client.request('GET', `/api/recordings/${id}/media`, undefined, { range: 'bytes=1000-' });
      await new Promise((r) => setTimeout(r, 500));
      hold.release();
      res = await answer;
    } finally {
      hold.release();
    }
    expect(res.status).toBe(500);
    expect(res.body.error.code).toBe('recording_damaged');
    await until('the integrity event', async () => (await playEvents(service, id)).some((e) => e.action === 'recording.integrity_failed'));
    expect(service.logs.join('')).toContain('"alert":"recording_damaged"');
  });

  it('is still raised when the viewer has left meanwhile, and the replay is audited as nothing received', async () => {
    const { c, id } = await damagedRecording();
    const hold = holdTransactions(service, (p) => p.reason === 'audit group commit');
    try {
      const sock = net.connect(port, '127.0.0.1');
      sock.on('error', () => undefined);
      sock.write(`GET /api/recordings/${id}/media HTTP/1.1\r\nhost: 127.0.0.1\r\ncookie: ${c.patient.client.cookie}\r\nrange: bytes=1000-\r\n\r\n`);
      await new Promise((r) => setTimeout(r, 500));
      sock.destroy();
      await until('the service to see the socket close', () => new Promise<boolean>((r) => service.built.app.server.getConnections((_e, n) => r(n === 0))));
    } finally {
      hold.release();
    }
    await until('the integrity event', async () => (await playEvents(service, id)).some((e) => e.action === 'recording.integrity_failed'));
    await until('the cut-short event', async () => (await playEvents(service, id)).some((e) => e.action === 'recording.play_cut_short'));
    const cut = (await playEvents(service, id)).find((e) => e.action === 'recording.play_cut_short')!;
    expect(JSON.parse(String(cut.details))).toEqual({ range: 'none', bytes: 0 });
    expect(service.logs.some((l) => l.includes('"alert":"recording_damaged"') && l.includes(id))).toBe(true);
  });
});

describe('a replay whose play event cannot be made durable', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startConsultationService();
  });
  afterAll(async () => {
    await service?.close();
  });

  it('sends no byte, writes no play event, and closes what it opened', async () => {
    const { c, id } = await recorded(service);
    const watch = watchBlobs(service.deps.recordings.blobs);

    const ok = await c.patient.client.request('GET', `/api/recordings/${id}/media`, undefined, { range: 'bytes=0-99' });
    expect(ok.status).toBe(206);
    await until('the first replay to close its reader', () => watch.opened === 1 && watch.closed.size === 1);
    const before = (await playEvents(service, id)).length;

    // The reads' audit writer refuses from now on (as when the service shuts down).
    await service.deps.scopes.close();
    const refused = await c.patient.client.request('GET', `/api/recordings/${id}/media`, undefined, { range: 'bytes=0-99' });
    expect(refused.status).toBe(500);
    expect(refused.body).toMatchObject({ error: { code: 'internal' } });
    expect(refused.headers['content-type']).toContain('application/json');

    // The recording had been opened for it, and is closed again.
    await until('the refused replay to close its reader', () => watch.opened === 2 && watch.closed.size === 2);
    expect((await playEvents(service, id)).length).toBe(before);
  });
});
