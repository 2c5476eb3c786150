import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';

/**
 * In-process V8 sampling profiler (node:inspector), switched on only for the profiling run.
 * Summarised as self time by where the code lives: a package under node_modules, a file
 * under src/, Node's internals, the garbage collector.
 */

export interface CpuSummary {
  sampledMs: number;
  /** Share of non-idle time, by place (package, src file, node internals, GC). */
  byPlace: { place: string; pct: number }[];
  /** Hottest functions by self time. */
  topFunctions: { fn: string; pct: number }[];
  /**
   * Share of busy time with the function somewhere on the stack (self + callees), for functions
   * in src/ and a few framework entry points: where a request's CPU goes, stage by stage.
   */
  inclusive?: { fn: string; pct: number }[];
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/** Frames worth an inclusive figure: the service's own code and the framework steps around it. */
function inclusiveKey(n: ProfileNode): string | null {
  const { functionName, url } = n.callFrame;
  const src = /\/src\/(.+)$/.exec(url);
  if (src && !url.includes('node_modules')) return `${functionName || '(anonymous)'} src/${src[1]}`;
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];
  if (nm === 'zod' && /^(parse|safeParse)$/.test(functionName)) return `${functionName} zod`;
  if (nm === 'fastify' && /^(serialize|onSendEnd|onSendHook|wrapOnSendEnd)$/.test(functionName)) return `${functionName} fastify`;
  if (nm === 'kysely' && /^(compile|compileQuery|executeQuery)$/.test(functionName)) return `${functionName} kysely`;
  if (nm === 'pg' && /^(handleDataRow|parseRow)$/.test(functionName)) return `${functionName} pg`;
  if (functionName === 'stringify' && !url) return 'JSON.stringify (native)';
  return null;
}

function placeOf(url: string, fn: string): string {
  if (fn === '(garbage collector)') return 'garbage collector';
  if (fn === '(program)') return '(program: native / not JS)';
  if (!url) return fn ? `(native) ${fn}` : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  const src = /\/(src|bench)\/(.+)$/.exec(url);
  if (src) return `${src[1]}/${src[2]}`;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/').slice(0, 2).join('/')}`;
  return url;
}

export function cpuProfiler() {
  let session: Session | undefined;
  return {
    async start() {
      session = new Session();
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: 200 });
      await session.post('Profiler.start');
    },
    async stop(): Promise<CpuSummary> {
      if (!session) throw new Error('cpu profiler not started');
      const { profile } = (await session.post('Profiler.stop')) as unknown as {
        profile: { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
      };
      session.disconnect();
      session = undefined;
      // BENCH_CPUPROFILE_DIR: also keep the raw profile (open it in Chrome DevTools or speedscope).
      const dir = process.env.BENCH_CPUPROFILE_DIR;
      if (dir) {
        mkdirSync(dir, { recursive: true });
        writeFileSync(path.join(dir, `${path.basename(process.argv[1] ?? 'node', '.ts')}-${process.pid}-${Date.now()}.cpuprofile`), JSON.stringify(profile));
      }
      const byId = new Map(profile.nodes.map((n) => [n.id, n]));
      const parent = new Map<number, number>();
      for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
      const incl = new Map<string, number>();
      const place = new Map<string, number>();
      const fns = new Map<string, number>();
      let busy = 0;
      let total = 0;
      profile.samples.forEach((id, i) => {
        const dt = profile.timeDeltas[i] ?? 0;
        total += dt;
        const n = byId.get(id);
        if (!n) return;
        const { functionName, url, lineNumber } = n.callFrame;
        if (functionName === '(idle)') return;
        busy += dt;
        const p = placeOf(url, functionName);
        place.set(p, (place.get(p) ?? 0) + dt);
        // Package files keep their path and line; src/ files run through tsx, whose line numbers are not the source's.
        const inPackage = /node_modules\/(.+)$/.exec(url)?.[1];
        const f = `${functionName || '(anonymous)'} ${inPackage ? `${inPackage}:${lineNumber + 1}` : p}`;
        fns.set(f, (fns.get(f) ?? 0) + dt);
        const onStack = new Set<string>();
        for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
          const k = inclusiveKey(byId.get(at)!);
          if (k) onStack.add(k);
        }
        for (const k of onStack) incl.set(k, (incl.get(k) ?? 0) + dt);
      });
      const top = (m: Map<string, number>, n: number) =>
        [...m.entries()]
          .sort((a, b) => b[1] - a[1])
          .slice(0, n)
          .map(([k, v]) => ({ k, pct: busy ? (100 * v) / busy : 0 }));
      return {
        sampledMs: total / 1000,
        byPlace: top(place, 15).map(({ k, pct }) => ({ place: k, pct })),
        topFunctions: top(fns, 15).map(({ k, pct }) => ({ fn: k, pct })),
        inclusive: top(incl, 25).map(({ k, pct }) => ({ fn: k, pct })),
      };
    },
  };
}
