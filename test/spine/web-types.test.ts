import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// The web app's API types are the contracts' zod types (issue 15): a shape copied by hand into
// web/src drifts from the server's without anyone noticing. These checks keep it one source.

const CONTRACTS = path.resolve('src/contracts');
const WEB = path.resolve('web/src');
const API_TYPES = path.join(WEB, 'api-types.ts');

function parse(file: string, code = readFileSync(file, 'utf8')): ts.SourceFile {
  return ts.createSourceFile(file, code, ts.ScriptTarget.Latest, true, file.endsWith('x') ? ts.ScriptKind.TSX : ts.ScriptKind.TS);
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return /\.(ts|tsx)$/.test(e.name) ? [p] : [];
  });
}

interface ModuleRef {
  spec: string;
  typeOnly: boolean;
}

/** Every module a file imports or re-exports from, and whether only types come from it. */
function importsOf(source: ts.SourceFile): ModuleRef[] {
  const refs: ModuleRef[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const typeOnly =
        !!clause &&
        (clause.isTypeOnly ||
          (!clause.name && !!clause.namedBindings && ts.isNamedImports(clause.namedBindings) && clause.namedBindings.elements.every((e) => e.isTypeOnly)));
      refs.push({ spec: node.moduleSpecifier.text, typeOnly });
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      refs.push({ spec: node.moduleSpecifier.text, typeOnly: node.isTypeOnly });
    } else if (ts.isCallExpression(node) && (node.expression.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(node.expression) && node.expression.text === 'require'))) {
      const [arg] = node.arguments;
      refs.push({ spec: arg && ts.isStringLiteral(arg) ? arg.text : '(computed)', typeOnly: false });
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      refs.push({ spec: node.argument.literal.text, typeOnly: true });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return refs;
}

/** `Extract<T, { … }>` and `Exclude<T, { … }>` pick a member of a contract's union; they declare no shape. */
function isUnionFilter(node: ts.Node): boolean {
  const parent = node.parent;
  return (
    !!parent &&
    ts.isTypeReferenceNode(parent) &&
    ts.isIdentifier(parent.typeName) &&
    ['Extract', 'Exclude'].includes(parent.typeName.text) &&
    parent.typeArguments?.[1] === node
  );
}

/** `Consultation['presence']` names a property of a contract's type; it is no literal written out. */
const isPropertyName = (node: ts.Node) => !!node.parent && ts.isIndexedAccessTypeNode(node.parent) && node.parent.indexType === node;

/**
 * What in a module of API types declares a shape by hand: an interface, enum or class; an object
 * type or a literal (`'audio' | 'video'`) written out; or a type alias built from nothing the
 * contracts define. Every alias must be derived from a contract or from another alias here.
 */
function handWrittenShapes(source: ts.SourceFile): string[] {
  const found: string[] = [];
  const namespaces = new Set<string>();
  const aliases = new Set<string>();
  for (const s of source.statements) {
    const ns = ts.isImportDeclaration(s) ? s.importClause?.namedBindings : undefined;
    if (ns && ts.isNamespaceImport(ns)) namespaces.add(ns.name.text);
    if (ts.isTypeAliasDeclaration(s)) aliases.add(s.name.text);
  }
  for (const s of source.statements) {
    if (ts.isInterfaceDeclaration(s) || ts.isEnumDeclaration(s) || ts.isClassDeclaration(s)) {
      found.push(`${s.name?.text ?? '(anonymous)'}: declared by hand`);
    } else if (ts.isVariableStatement(s)) {
      found.push(`${s.declarationList.declarations.map((d) => d.name.getText(source)).join(', ')}: a value declared here (re-export it from an import-free contract module)`);
    } else if (ts.isTypeAliasDeclaration(s)) {
      let derived = false;
      const visit = (node: ts.Node): void => {
        if (isUnionFilter(node)) return;
        if (ts.isTypeLiteralNode(node) || ts.isMappedTypeNode(node)) found.push(`${s.name.text}: an object type written out`);
        else if ((ts.isLiteralTypeNode(node) && !isPropertyName(node)) || ts.isTemplateLiteralTypeNode(node)) found.push(`${s.name.text}: a literal type written out`);
        if (ts.isIdentifier(node) && node !== s.name && (namespaces.has(node.text) || (aliases.has(node.text) && node.text !== s.name.text))) derived = true;
        ts.forEachChild(node, visit);
      };
      visit(s.type);
      if (!derived) found.push(`${s.name.text}: not derived from a contract`);
    }
  }
  return found;
}

const insideContracts = (file: string, spec: string) => spec.startsWith('.') && path.dirname(path.resolve(path.dirname(file), spec)) === CONTRACTS;

describe('web/src/api-types.ts takes every API shape from src/contracts', () => {
  it('finds hand-written shapes and imports (self-check)', () => {
    const bad = parse(
      'bad.ts',
      `import type * as c from '../../src/contracts/auth';
       import { z } from 'zod';
       export interface Account { id: string }
       export type Mode = 'audio' | 'video';
       export type Slot = { startsAt: string };
       export type Widened = c.X & { extra: string };
       export type Id = string;
       export const Close = { ended: 4409 } as const;
       export type Signed = Extract<z.infer<typeof c.SessionInfo>, { authenticated: true }>;
       export type Item = Signed['permissions'][number];
       export type Narrowed = Signed['account']['kind'] | 'robot';`,
    );
    expect(handWrittenShapes(bad)).toEqual([
      'Account: declared by hand',
      'Mode: a literal type written out',
      'Mode: a literal type written out',
      'Mode: not derived from a contract',
      'Slot: an object type written out',
      'Slot: not derived from a contract',
      'Widened: an object type written out',
      'Id: not derived from a contract',
      'Close: a value declared here (re-export it from an import-free contract module)',
      'Narrowed: a literal type written out',
    ]);
    expect(importsOf(bad)).toEqual([
      { spec: '../../src/contracts/auth', typeOnly: true },
      { spec: 'zod', typeOnly: false },
    ]);
  });

  it('declares no shape of its own', () => {
    expect(handWrittenShapes(parse(API_TYPES))).toEqual([]);
  });

  it('imports only types from the contracts and zod, and values only from contract modules that import nothing', () => {
    const offenders: string[] = [];
    for (const { spec, typeOnly } of importsOf(parse(API_TYPES))) {
      if (spec === 'zod' && typeOnly) continue;
      if (!insideContracts(API_TYPES, spec)) {
        offenders.push(`imports ${spec}`);
        continue;
      }
      if (typeOnly) continue;
      const target = path.resolve(path.dirname(API_TYPES), `${spec}.ts`);
      // A value import puts the module in the web bundle: it must bring neither zod nor anything else.
      const itsImports = importsOf(parse(target)).filter((r) => !r.typeOnly);
      if (itsImports.length > 0) offenders.push(`imports values from ${spec}, which imports ${itsImports.map((r) => r.spec).join(', ')}`);
    }
    expect(offenders).toEqual([]);
  });

  it('is the only door from web/src into the server source', () => {
    const offenders: string[] = [];
    for (const file of sourceFiles(WEB)) {
      if (file === API_TYPES) continue;
      for (const { spec } of importsOf(parse(file))) {
        if (spec === 'zod' || (spec.startsWith('.') && !path.resolve(path.dirname(file), spec).startsWith(WEB + path.sep))) {
          offenders.push(`${path.relative(WEB, file)} imports ${spec}`);
        }
      }
    }
    expect(offenders).toEqual([]);
  });
});

describe('src/contracts holds no server code', () => {
  it('imports nothing but zod and other contracts', () => {
    const offenders: string[] = [];
    for (const file of sourceFiles(CONTRACTS)) {
      for (const { spec } of importsOf(parse(file))) {
        if (spec !== 'zod' && !insideContracts(file, spec)) offenders.push(`${path.relative(CONTRACTS, file)} imports ${spec}`);
      }
    }
    expect(offenders).toEqual([]);
  });
});
