import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { onPostgres } from '../harness';
import { OWNER_ROLE, SERVICE_ROLE, urlFor, withAdmin } from '../pg-admin';
import { BIN, freePort } from './spawn';

// Start-up waits for a database that is not there yet (it is starting too, or failing over),
// says why it waits, and gives up after DATABASE_CONNECT_TIMEOUT with a plain message.

/** A TCP relay to the test PostgreSQL server that can be opened late. */
function relayTo(port: number): { listen(on: number): Promise<void>; close(): Promise<void> } {
  let server: Server | undefined;
  const sockets = new Set<Socket>();
  return {
    listen: (on) =>
      new Promise((resolve, reject) => {
        server = createServer((client) => {
          const upstream = connect(port, '127.0.0.1');
          for (const s of [client, upstream]) {
            sockets.add(s);
            s.on('error', () => s.destroy());
            s.on('close', () => sockets.delete(s));
          }
          client.pipe(upstream).pipe(client);
        });
        server.once('error', reject);
        server.listen(on, '127.0.0.1', () => resolve());
      }),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    },
  };
}

function run(env: Record<string, string>): Promise<{ code: number | null; output: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    let output = '';
    const child = spawn(process.execPath, [BIN, 'serve'], {
      env: { ...process.env, LOG_LEVEL: 'warn', CONFIDANT_DEMO: '0', HOST: '127.0.0.1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('exit', (code) => resolve({ code, output, ms: Date.now() - started }));
  });
}

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

describe('start-up without a database', () => {
  it('waits, says why, and gives up after DATABASE_CONNECT_TIMEOUT with a plain message', async () => {
    const nowhere = await freePort();
    const r = await run({
      PORT: String(await freePort()),
      DATABASE_URL: `postgres://confidant_app@127.0.0.1:${nowhere}/confidant`,
      DATABASE_CONNECT_TIMEOUT: '3',
    });
    expect(r.code).toBe(1);
    expect(r.output).toMatch(/waiting for the database \(connecting\)/);
    expect(r.output).toMatch(/"errCode":"ECONNREFUSED"/);
    expect(r.output).toMatch(/confidant: the database did not answer within 3 s \(DATABASE_CONNECT_TIMEOUT\) while connecting: ECONNREFUSED/);
    // It waited (not the old immediate exit), and not much longer than it was told to.
    expect(r.ms).toBeGreaterThan(2_000);
    expect(r.ms).toBeLessThan(20_000);
  });

  it.skipIf(!onPostgres)('comes up by itself once the database starts accepting connections', async () => {
    const name = `confidant_t_wait_${randomBytes(6).toString('hex')}`;
    await withAdmin((c) => c.query(`create database ${name} template ${inject('pgTemplate')} owner ${OWNER_ROLE}`));
    cleanups.push(() => withAdmin((c) => c.query(`drop database if exists ${name} with (force)`)));
    const dbPort = await freePort();
    const relay = relayTo(Number(new URL(urlFor(SERVICE_ROLE, name)).port || 5432));
    cleanups.push(() => relay.close());
    const at = (role: string) => {
      const u = new URL(urlFor(role, name));
      u.port = String(dbPort);
      return u.toString();
    };
    const port = await freePort();
    let output = '';
    const child = spawn(process.execPath, [BIN, 'serve'], {
      env: { ...process.env, LOG_LEVEL: 'warn', CONFIDANT_DEMO: '0', HOST: '127.0.0.1', PORT: String(port), DATABASE_URL: at(SERVICE_ROLE), DATABASE_OWNER_URL: at(OWNER_ROLE), DATABASE_CONNECT_TIMEOUT: '60' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    cleanups.push(async () => {
      child.kill('SIGTERM');
      await exited;
    });
    // The database "starts" once the service has said it is waiting for it (twice: it retries).
    await new Promise<void>((resolve) => {
      const onData = (d: Buffer) => {
        output += d;
        if ((output.match(/waiting for the database \(connecting\)/g) ?? []).length >= 2) {
          child.stdout.off('data', onData);
          resolve();
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', (d) => (output += d));
    });
    await relay.listen(dbPort);
    let ready = 0;
    for (let i = 0; i < 200 && ready !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      ready = await fetch(`http://127.0.0.1:${port}/api/health/ready`).then((r) => r.status, () => 0);
    }
    expect(ready).toBe(200);
    expect(child.exitCode).toBeNull();
  });
});
