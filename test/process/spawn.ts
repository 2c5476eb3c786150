import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import path from 'node:path';

export const BIN = path.resolve('bin/confidant.mjs');

/**
 * A data directory whose embedded database already exists, loaded from this run's migrated
 * template (test/global-setup.ts), so a test's first process skips initdb: for tests about
 * something else than a first start (test/process/lifecycle.test.ts starts from nothing).
 */
export async function seededDataDir(prefix: string): Promise<string> {
  const { openDatabase } = await import('../../src/db');
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  const template = new Blob([readFileSync(path.resolve('.test-cache/pglite-template.tar'))]);
  const db = await openDatabase({ kind: 'pglite', dataDir: path.join(dir, 'pglite'), loadDataDir: template, serviceRole: 'confidant_app', thread: 'main' });
  await db.close();
  return dir;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export interface Running {
  child: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `confidant serve` as a real process and waits until it answers /api/health. `wrap`
 * runs it under another command (`['strace', …]`): `child` is then that command's process.
 */
export async function startServer(env: Record<string, string>, timeoutMs = 60_000, wrap: string[] = []): Promise<Running> {
  const port = await freePort();
  let out = '';
  const command = [...wrap, process.execPath, BIN, 'serve'];
  const child = spawn(command[0]!, command.slice(1), {
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', CONFIDANT_DEMO: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  let done = false;
  void exited.then(() => (done = true));
  while (Date.now() < deadline && !done) {
    try {
      const r = await fetch(`${url}/api/health`);
      if (r.ok) return { child, url, output: () => out, exited };
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  child.kill('SIGKILL');
  throw new Error(`server did not start:\n${out}`);
}

export function runCli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, LOG_LEVEL: 'warn', CONFIDANT_DEMO: '0', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

export async function post(url: string, body: unknown, cookie?: string) {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-csrf-token': 'none', ...(cookie ? { cookie } : {}) },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: (await r.json().catch(() => null)) as any, cookie: r.headers.get('set-cookie')?.split(';')[0] };
}
