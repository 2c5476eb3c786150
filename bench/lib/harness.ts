import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDatabase, dropDatabases } from './bench-db';
import { startChild, type ChildServer } from './child';

/**
 * What every bench does around its measurements: options from the environment, the code it
 * measures, a time limit, cleanup (after success, failure, a signal or the time limit: children
 * stopped, databases dropped, whatever else was registered) and the results file.
 */

const benchDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

/** A failure the bench has already explained: printed without a stack. */
export class BenchFailure extends Error {}

/** A number from the environment, `def` when unset; anything outside [min, max] is an error. */
export function envNum(name: string, def: number, min: number, max: number, integer = false): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!(integer ? Number.isInteger(n) : Number.isFinite(n)) || n < min || n > max) {
    throw new Error(`${name} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max} (got "${raw}")`);
  }
  return n;
}

export const envInt = (name: string, def: number, min: number, max: number) => envNum(name, def, min, max, true);

/** Lines framed by bars on stderr: a failure no one should miss in a long log. */
export function loud(lines: string[]) {
  const bar = '!'.repeat(72);
  console.error(['', bar, ...lines.map((l) => `!! ${l}`), bar].join('\n'));
}

export interface CodeVersion {
  commit: string | null;
  /** A fingerprint of uncommitted changes under src/, or null when there are none. */
  srcChanges: string | null;
}

function codeVersion(): CodeVersion {
  const git = (args: string[]) => execFileSync('git', args, { cwd: path.join(benchDir, '..'), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const commit = git(['rev-parse', 'HEAD']).trim();
    const diff = git(['diff', 'HEAD', '--', 'src']) + git(['ls-files', '--others', '--exclude-standard', '--', 'src']);
    return { commit, srcChanges: diff ? createHash('sha256').update(diff).digest('hex').slice(0, 12) : null };
  } catch {
    return { commit: null, srcChanges: null };
  }
}

export interface Bench {
  log(msg: string): void;
  /**
   * `undo` runs at cleanup, the last registered first. Registered after cleanup began (a signal
   * during set-up), it runs at once and the bench stops.
   */
  defer(what: string, undo: () => unknown): Promise<void>;
  /** A child server (child.ts), stopped at cleanup. */
  startChild(name: string, entry: string, args: string[]): Promise<ChildServer>;
  /** A fresh bench database (bench-db.ts), dropped at cleanup. */
  createDatabase(label: string): Promise<string>;
  /** bench/results/<name>-latest.json: the benchmark, when, the code and the machine, then `out`. */
  writeResults(out: { machine?: object } & Record<string, unknown>): void;
}

/** Runs `main` as the bench `name`: exit 0 when it returns, 1 when it throws or overruns `budgetMs`, 130 on a signal. */
export function runBench(name: string, o: { budgetMs?: number }, main: (bench: Bench) => Promise<void>): void {
  const started = Date.now();
  const loadAverageAtStart = os.loadavg();
  const log = (msg: string) => console.log(`[bench:${name}] ${msg}`);
  const undos: { what: string; undo: () => unknown }[] = [];
  let cleaning: Promise<void> | undefined;
  const runUndo = (u: { what: string; undo: () => unknown }) =>
    Promise.resolve()
      .then(u.undo)
      .catch((e) => console.error(`${u.what}: ${String(e)}`));
  const cleanup = () =>
    (cleaning ??= (async () => {
      for (const u of undos.splice(0).reverse()) await runUndo(u);
    })());

  const code = codeVersion();
  const bench: Bench = {
    log,
    async defer(what, undo) {
      if (cleaning) {
        await cleaning;
        await runUndo({ what, undo });
        throw new BenchFailure('interrupted');
      }
      undos.push({ what, undo });
    },
    async startChild(childName, entry, args) {
      const c = await startChild(childName, entry, args);
      await bench.defer(`stopping ${c.name}`, () => c.stop());
      return c;
    },
    async createDatabase(label) {
      const db = await createDatabase(label);
      await bench.defer(`dropping ${db}`, () => dropDatabases([db]));
      return db;
    },
    writeResults(out) {
      const dir = path.join(benchDir, 'results');
      mkdirSync(dir, { recursive: true });
      const file = path.join(dir, `${name}-latest.json`);
      const machine = { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? null, node: process.version, loadAverageAtStart, ...out.machine };
      const all = { benchmark: name, finishedAt: new Date().toISOString(), elapsedS: (Date.now() - started) / 1000, code, ...out, machine };
      writeFileSync(file, `${JSON.stringify(all, null, 2)}\n`);
      log(`wrote ${path.relative(process.cwd(), file)} (${((Date.now() - started) / 1000).toFixed(0)} s in all)`);
    },
  };

  const { budgetMs } = o;
  const guard = budgetMs
    ? setTimeout(() => {
        loud([`BENCH FAILED: still running after ${Math.round(budgetMs / 1000)} s; stopping.`]);
        void cleanup().finally(() => process.exit(1));
      }, budgetMs)
    : undefined;
  // `on`, not `once`: when its child is slow to acknowledge a signal, tsx sends it again, and a
  // process with no listener left is exited at once by tsx's own handler (before the cleanup).
  let signalled = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (signalled) return;
      signalled = true;
      console.error(`\n[bench:${name}] ${sig}: cleaning up`);
      void cleanup().finally(() => process.exit(130));
    });
  }

  log(`code ${code.commit?.slice(0, 12) ?? 'unknown'}${code.srcChanges ? ` + uncommitted src/ changes (fingerprint ${code.srcChanges})` : ''}`);
  main(bench)
    .finally(async () => {
      clearTimeout(guard);
      await cleanup();
    })
    .then(
      () => process.exit(0),
      (err) => {
        if (!(err instanceof BenchFailure)) console.error(err);
        console.error(`\n[bench:${name}] FAILED: ${err instanceof Error ? err.message : String(err)}`);
        void cleanup().finally(() => process.exit(1));
      },
    );
}
