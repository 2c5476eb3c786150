/**
 * bench:replay, target (a): nginx serving the plaintext file with sendfile, as a child process
 * of the bench with a generated configuration in a temporary directory: one process
 * (`master_process off`, `daemon off`), its pid file, error log and temp paths in that
 * directory, no access log, listening on a free 127.0.0.1 port. Nothing outside the temporary
 * directory is read or written (the `-e` flag keeps even the start-up error log there).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export interface NginxServer {
  name: string;
  pid: number;
  port: number;
  stop(): Promise<void>;
}

/** The nginx binary, or null (with why) when there is none to run. */
export function findNginx(): { bin: string; version: string; why?: undefined } | { bin: null; version?: undefined; why: string } {
  const candidates = [process.env.BENCH_NGINX, '/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx'].filter((p): p is string => !!p);
  for (const bin of candidates) {
    if (!existsSync(bin)) continue;
    const r = spawnSync(bin, ['-v'], { encoding: 'utf8' });
    if (r.status === 0) return { bin, version: `${r.stdout}${r.stderr}`.trim().replace(/^nginx version: /, '') };
  }
  return { bin: null, why: `no nginx binary found (looked for ${candidates.join(', ')}; on Debian: apt-get install nginx-light)` };
}

/** `nginx -V` lists the modules left out at build time; their *_temp_path directives would be unknown. */
function builtWithout(bin: string): Set<string> {
  const r = spawnSync(bin, ['-V'], { encoding: 'utf8' });
  return new Set([...`${r.stdout}${r.stderr}`.matchAll(/--without-http_(\w+)_module/g)].map((m) => m[1]!));
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Starts nginx serving `file` as `/<basename>`. `dir` is a fresh temporary directory of the
 * bench's (it gets conf/, www/, logs and temp paths).
 */
export async function startNginx(bin: string, dir: string, file: string): Promise<NginxServer> {
  const without = builtWithout(bin);
  const www = path.join(dir, 'www');
  mkdirSync(www, { recursive: true });
  const served = path.join(www, path.basename(file));
  if (!existsSync(served)) symlinkSync(file, served);
  const temps = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .filter((m) => m === 'client_body' || !without.has(m))
    .map((m) => {
      const p = path.join(dir, 'tmp', m);
      mkdirSync(p, { recursive: true });
      return `  ${m}_temp_path ${p};`;
    });
  // Try a few ports: the free port found may be taken by someone else before nginx binds it.
  let lastErr = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const conf = path.join(dir, 'nginx.conf');
    const errorLog = path.join(dir, 'error.log');
    writeFileSync(
      conf,
      [
        'daemon off;',
        'master_process off;',
        'worker_processes 1;',
        `pid ${path.join(dir, 'nginx.pid')};`,
        `error_log ${errorLog} warn;`,
        'events { worker_connections 8192; }',
        'http {',
        '  access_log off;',
        '  sendfile on;',
        '  tcp_nopush on;',
        '  keepalive_requests 1000000;',
        '  keepalive_timeout 60s;',
        '  types { video/webm webm; }',
        '  default_type application/octet-stream;',
        ...temps,
        '  server {',
        `    listen 127.0.0.1:${port};`,
        `    root ${www};`,
        '    location / { add_header cache-control no-store; }',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
    const child: ChildProcess = spawn(bin, ['-p', dir, '-e', errorLog, '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    let exited = false;
    const gone = new Promise<void>((resolve) =>
      child.once('exit', () => {
        exited = true;
        resolve();
      }),
    );
    const deadline = Date.now() + 10_000;
    let up = false;
    while (!exited && Date.now() < deadline) {
      if (await canConnect(port)) {
        up = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (up && !exited) {
      return {
        name: 'nginx',
        pid: child.pid!,
        port,
        stop: async () => {
          if (exited) return;
          child.kill('SIGQUIT');
          const t = setTimeout(() => !exited && child.kill('SIGKILL'), 5_000);
          await gone;
          clearTimeout(t);
        },
      };
    }
    if (!exited) child.kill('SIGKILL');
    await gone;
    const log = existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : '';
    lastErr = `${stderr}${log}`.trim().split('\n').slice(-3).join(' | ');
    if (!/Address already in use/.test(lastErr)) break;
  }
  throw new Error(`nginx did not start: ${lastErr || 'no message'}`);
}
