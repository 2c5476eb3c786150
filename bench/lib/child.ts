import { fork, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';

/**
 * The servers under test run in child processes, one per target, so that the load
 * generator (in the parent) never shares an event loop with the server it measures,
 * and both targets run in exactly the same topology.
 *
 * A tiny request/response protocol over the IPC channel: the child answers `ready`
 * with its port, then serves named commands (usage counters, profiling on/off, stop).
 */

type Handler = (arg: unknown) => unknown | Promise<unknown>;

interface CallMsg {
  type: 'call';
  id: number;
  name: string;
  arg: unknown;
}
interface ReplyMsg {
  type: 'reply';
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}
interface ReadyMsg {
  type: 'ready';
  port: number;
}
interface FailedMsg {
  type: 'failed';
  error: string;
}

export interface ChildServer {
  name: string;
  pid: number;
  port: number;
  call<T = unknown>(name: string, arg?: unknown, timeoutMs?: number): Promise<T>;
  /** Asks the child to close cleanly; kills it (by its own pid) if it does not exit in time. */
  stop(): Promise<void>;
}

export async function startChild(name: string, entry: string, args: string[], readyTimeoutMs = 60_000): Promise<ChildServer> {
  // process.execArgv carries tsx's loader, so the child can run TypeScript too.
  const child: ChildProcess = fork(entry, args, { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let exited = false;
  const exitWaiters: (() => void)[] = [];

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: not ready after ${readyTimeoutMs} ms`)), readyTimeoutMs);
    child.on('message', (m: ReadyMsg | FailedMsg | ReplyMsg) => {
      if (m.type === 'ready') {
        clearTimeout(timer);
        resolve(m.port);
      } else if (m.type === 'failed') {
        clearTimeout(timer);
        reject(new Error(`${name}: ${m.error}`));
      } else if (m.type === 'reply') {
        const p = pending.get(m.id);
        if (!p) return;
        pending.delete(m.id);
        if (m.ok) p.resolve(m.value);
        else p.reject(new Error(`${name}: ${m.error}`));
      }
    });
    child.on('exit', (code, signal) => {
      exited = true;
      clearTimeout(timer);
      const err = new Error(`${name} exited (code ${code}, signal ${signal})`);
      reject(err);
      for (const p of pending.values()) p.reject(err);
      pending.clear();
      for (const w of exitWaiters) w();
    });
  }).catch((err) => {
    if (!exited && child.pid) child.kill('SIGKILL');
    throw err;
  });

  const call = <T>(cmd: string, arg?: unknown, timeoutMs = 30_000) =>
    new Promise<T>((resolve, reject) => {
      if (exited) return reject(new Error(`${name} has exited`));
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`${name}: ${cmd} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      child.send({ type: 'call', id, name: cmd, arg } satisfies CallMsg);
    });

  return {
    name,
    pid: child.pid!,
    port,
    call,
    stop: async () => {
      if (exited) return;
      const gone = new Promise<void>((r) => exitWaiters.push(r));
      await call('stop', undefined, 10_000).catch(() => {});
      const t = setTimeout(() => !exited && child.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(t);
    },
  };
}

/** Child side: serve commands; `usage` reports CPU time and event-loop utilisation since the previous `usage-reset`. */
export function serveParent(port: number, handlers: Record<string, Handler>, onStop: () => Promise<void>) {
  let cpu = process.cpuUsage();
  let elu = performance.eventLoopUtilization();
  let wall = performance.now();
  const builtIn: Record<string, Handler> = {
    'usage-reset': () => {
      cpu = process.cpuUsage();
      elu = performance.eventLoopUtilization();
      wall = performance.now();
      return null;
    },
    usage: () => {
      const c = process.cpuUsage(cpu);
      const ms = performance.now() - wall;
      return {
        wallMs: ms,
        cpuMs: (c.user + c.system) / 1000,
        cpuCores: (c.user + c.system) / 1000 / ms,
        eventLoopUtilization: performance.eventLoopUtilization(elu).utilization,
      };
    },
  };
  process.on('message', async (m: CallMsg) => {
    if (m?.type !== 'call') return;
    try {
      if (m.name === 'stop') {
        process.send!({ type: 'reply', id: m.id, ok: true, value: null } satisfies ReplyMsg);
        await onStop();
        process.exit(0);
      }
      const h = handlers[m.name] ?? builtIn[m.name];
      if (!h) throw new Error(`unknown command ${m.name}`);
      const value = await h(m.arg);
      process.send!({ type: 'reply', id: m.id, ok: true, value } satisfies ReplyMsg);
    } catch (err) {
      process.send!({ type: 'reply', id: m.id, ok: false, error: err instanceof Error ? err.message : String(err) } satisfies ReplyMsg);
    }
  });
  // Never outlive the parent (the IPC channel closes when it dies).
  process.on('disconnect', () => void onStop().finally(() => process.exit(0)));
  process.send!({ type: 'ready', port } satisfies ReadyMsg);
}

export function reportStartupFailure(err: unknown): never {
  const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  if (process.send) process.send({ type: 'failed', error: msg } satisfies FailedMsg);
  else console.error(msg);
  process.exit(1);
}
