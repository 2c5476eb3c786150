import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const CLIENT_MODULES = ['pg', '@electric-sql/pglite', 'kysely', 'postgres', 'pg-pool'];
const SRC = path.resolve('src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return /\.(ts|tsx|mjs|js)$/.test(e.name) ? [p] : [];
  });
}

/** Every module specifier a file imports, statically or dynamically, or re-exports. */
export function importsOf(code: string): string[] {
  const specs: string[] = [];
  const patterns = [
    /\bimport\s+(?:type\s+)?(?:[^'"`;]*?\s+from\s+)?['"]([^'"]+)['"]/g,
    /\bexport\s+(?:type\s+)?[^'"`;]*?\s+from\s+['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const re of patterns) for (const m of code.matchAll(re)) specs.push(m[1]!);
  return specs;
}

function isClient(spec: string) {
  return CLIENT_MODULES.some((m) => spec === m || spec.startsWith(`${m}/`));
}

describe('database client fence', () => {
  it('finds the import patterns it is looking for (self-check)', () => {
    expect(importsOf(`import pg from 'pg';\nimport { sql } from "kysely";\nconst x = await import('@electric-sql/pglite');\nexport { y } from 'kysely';`).filter(isClient))
      .toEqual(['pg', 'kysely', 'kysely', '@electric-sql/pglite']);
  });

  it('keeps every database client import inside src/db', () => {
    const offenders: string[] = [];
    for (const file of sourceFiles(SRC)) {
      const rel = path.relative(SRC, file);
      if (rel.startsWith(`db${path.sep}`)) continue;
      for (const spec of importsOf(readFileSync(file, 'utf8'))) {
        // Type-only imports of Kysely's types are still imports of the client package: route them through src/db too.
        if (isClient(spec)) offenders.push(`${rel} imports ${spec}`);
      }
    }
    expect(offenders).toEqual([]);
  });
});

describe('db/index.ts is the only door into src/db', () => {
  it('imports nothing from inside src/db but its index (and the schema types)', () => {
    const offenders: string[] = [];
    for (const file of sourceFiles(SRC)) {
      const rel = path.relative(SRC, file);
      if (rel.startsWith(`db${path.sep}`)) continue;
      for (const spec of importsOf(readFileSync(file, 'utf8'))) {
        if (/(^|\/)db\/(?!schema$)[^/]+/.test(spec)) offenders.push(`${rel} imports ${spec}`);
      }
    }
    expect(offenders).toEqual([]);
  });
});

describe('audit log has one writer', () => {
  it('appends to audit_events only from src/audit', () => {
    const writers = sourceFiles(SRC)
      .filter((f) => /audit_events/.test(readFileSync(f, 'utf8')) && /insertInto\(\s*['"]audit_events['"]|insert\s+into\s+audit_events/i.test(readFileSync(f, 'utf8')))
      .map((f) => path.relative(SRC, f));
    expect(writers).toEqual([path.join('audit', 'audit-log.ts')]);
  });
});
