import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlobReader, BlobStore } from '../../src/modules/recordings/blob-store';
import type { TestService } from '../harness';
import { latestAuditEvents } from '../fixtures';
import { liveConsultation, recordClip, startConsultationService, type LiveConsultation } from './support';

// The replay route opens the recording (and reads and checks its first segment) while the play
// event is being made durable. Not a byte goes out before the event is durable; if it cannot be
// written, or the viewer leaves before the answer, whatever was opened is closed again.

/**
 * Watches the service's real blob store: which readers were opened and which closed again, and
 * lets a test hold an open until it says so.
 */
function watchBlobs(blobs: BlobStore) {
  const realOpen = blobs.open.bind(blobs);
  const watch = {
    opened: 0,
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
    return reader;
  };
  return watch;
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
  return events.filter((e) => e.object_id === recordingId && String(e.action).startsWith('recording.play'));
}

async function recorded(service: TestService): Promise<{ c: LiveConsultation; id: string }> {
  const c = await liveConsultation(service);
  const id = await recordClip(service, c);
  return { c, id };
}

describe('a viewer who leaves while the replay is being opened', () => {
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

  it('is audited as having received nothing, and the recording is closed again', async () => {
    const { c, id } = await recorded(service);
    const watch = watchBlobs(service.deps.recordings.blobs);
    let release!: () => void;
    watch.gate = new Promise<void>((r) => (release = r));
    const entered = new Promise<void>((r) => (watch.entered = r));

    // A raw socket: the request, and gone once the service has started opening the recording.
    const sock = net.connect(port, '127.0.0.1');
    let answered = 0;
    sock.on('data', (b) => (answered += b.length));
    sock.on('error', () => undefined);
    sock.write(
      `GET /api/recordings/${id}/media HTTP/1.1\r\nhost: 127.0.0.1\r\ncookie: ${c.patient.client.cookie}\r\nrange: bytes=0-\r\n\r\n`,
    );
    await entered;
    sock.destroy();
    await until('the service to see the socket close', () =>
      new Promise<boolean>((r) => service.built.app.server.getConnections((_e, n) => r(n === 0))),
    );
    watch.gate = null;
    release();

    await until('the cut-short event', async () => (await playEvents(service, id)).some((e) => e.action === 'recording.play_cut_short'));
    const events = await playEvents(service, id);
    const play = events.find((e) => e.action === 'recording.play');
    const cut = events.find((e) => e.action === 'recording.play_cut_short');
    expect(play).toMatchObject({ actor_id: c.patient.id, patient_id: c.patient.id });
    expect(JSON.parse(String(cut!.details))).toEqual({ range: 'none', bytes: 0 });
    expect(answered).toBe(0);
    // The recording was opened (after the gate) and closed again; nothing was logged as a failure.
    await until('the reader to be closed', () => watch.opened === 1 && watch.closed.size === 1);
    expect(service.logs.join('')).not.toContain('request failed');
  });
});

describe('a viewer who leaves while the play event is being made durable', () => {
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

  it('gets nothing sent, is audited as having received nothing, and the recording is closed again', async () => {
    const { c, id } = await recorded(service);
    const watch = watchBlobs(service.deps.recordings.blobs);
    // The audit group commit waits for the test's word: the recording is opened meanwhile.
    const db = service.db;
    const transaction = db.transaction.bind(db);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let holding = true;
    db.transaction = ((principal, fn, o) =>
      holding && principal.reason === 'audit group commit'
        ? held.then(() => transaction(principal, fn, o))
        : transaction(principal, fn, o)) as typeof db.transaction;
    try {
      const sock = net.connect(port, '127.0.0.1');
      let answered = 0;
      sock.on('data', (b) => (answered += b.length));
      sock.on('error', () => undefined);
      sock.write(
        `GET /api/recordings/${id}/media HTTP/1.1\r\nhost: 127.0.0.1\r\ncookie: ${c.patient.client.cookie}\r\nrange: bytes=0-\r\n\r\n`,
      );
      await until('the recording to be opened', () => watch.opened === 1);
      sock.destroy();
      await until('the service to see the socket close', () =>
        new Promise<boolean>((r) => service.built.app.server.getConnections((_e, n) => r(n === 0))),
      );
      holding = false;
      release();

      await until('the cut-short event', async () => (await playEvents(service, id)).some((e) => e.action === 'recording.play_cut_short'));
      const events = await playEvents(service, id);
      expect(events.map((e) => e.action).sort()).toEqual(['recording.play', 'recording.play_cut_short']);
      expect(JSON.parse(String(events.find((e) => e.action === 'recording.play_cut_short')!.details))).toEqual({ range: 'none', bytes: 0 });
      expect(answered).toBe(0);
      await until('the reader to be closed', () => watch.closed.size === 1);
      await new Promise((r) => setTimeout(r, 50));
      expect(service.logs.join('')).not.toContain('request failed');
    } finally {
      db.transaction = transaction;
      release();
    }
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
