/**
 * The layers of lib/ and what each may import: the table the README's layout section
 * shows, and the checker that holds every import in lib/ to it.
 *
 * A rule names a module path under lib/ without extension (`comm/connection`), or a
 * folder (`registry` is all of lib/registry/ and lib/registry.ts). A trailing `·` allows
 * type-only imports (`import type`, or imports whose every name is a type). A layer may
 * always import its own files.
 */
import * as fs from 'node:fs';
import { builtinModules } from 'node:module';
import * as path from 'node:path';
import * as ts from 'typescript';

export interface Layer {
  name: string;
  /** Files or folders of lib/ in this layer. */
  paths: string[];
  /** What it may import from lib/ (`*`: anything). */
  mayImport: string[];
  /** Packages it may import: `rxjs`, `msgpackr`, `node` (Node's built-ins). */
  packages: string[];
}

const anything = ['*'];

export const LAYERS: Layer[] = [
  { name: 'entry', paths: ['index.ts', 'setup-node.ts'], mayImport: anything, packages: ['node'] },
  { name: 'testing', paths: ['testing'], mayImport: anything, packages: ['rxjs', 'node'] },
  {
    name: 'connect',
    paths: ['connect'],
    mayImport: ['options', 'registry', 'comm', 'addresses', 'status', 'errors'],
    packages: ['rxjs'],
  },
  {
    name: 'listen',
    paths: ['listen'],
    mayImport: ['options', 'registry', 'comm', 'addresses', 'status', 'errors'],
    packages: ['rxjs'],
  },
  { name: 'address lookups', paths: ['address-lookups.ts'], mayImport: ['registry', 'addresses', 'errors'], packages: [] },
  {
    name: 'options',
    paths: ['options'],
    mayImport: ['registry·', 'protocol·', 'comm·', 'addresses', 'errors'],
    packages: ['rxjs'],
  },
  {
    name: 'transports/socket',
    paths: ['transports/socket'],
    mayImport: ['transports/local-ip', 'protocol', 'comm/connection·', 'registry/backend·', 'addresses', 'errors'],
    packages: ['rxjs', 'node'],
  },
  {
    name: 'transports/tcp',
    paths: ['transports/tcp'],
    mayImport: ['transports/socket', 'protocol', 'comm/connection·', 'registry/backend·', 'addresses', 'errors'],
    packages: ['rxjs', 'node'],
  },
  {
    name: 'transports/tls',
    paths: ['transports/tls'],
    mayImport: ['transports/socket', 'protocol', 'comm/connection·', 'registry/backend·', 'addresses', 'errors'],
    packages: ['rxjs', 'node'],
  },
  {
    name: 'transports/inproc',
    paths: ['transports/inproc', 'transports/local-ip.ts'],
    mayImport: ['comm/connection·', 'registry/backend·', 'addresses', 'errors'],
    // local-ip reads the interface list; the browser build will give inproc its own.
    packages: ['rxjs', 'node'],
  },
  {
    name: 'registry',
    paths: ['registry'],
    mayImport: ['comm/connection·', 'protocol/codec·', 'errors'],
    // discover.ts reads installed packages' manifests, as Dask reads entry points.
    packages: ['rxjs', 'node'],
  },
  { name: 'comm', paths: ['comm'], mayImport: ['errors', 'status'], packages: ['rxjs'] },
  // frame-parser.ts reads Node's largest Buffer size until the browser build replaces it.
  { name: 'protocol', paths: ['protocol'], mayImport: ['errors'], packages: ['msgpackr', 'buffer'] },
  { name: 'addresses', paths: ['addresses.ts'], mayImport: ['errors'], packages: [] },
  { name: 'errors', paths: ['errors.ts'], mayImport: [], packages: [] },
  { name: 'status', paths: ['status.ts'], mayImport: [], packages: ['rxjs'] },
];

export interface Import {
  /** The importing file, relative to lib/. */
  from: string;
  specifier: string;
  typeOnly: boolean;
}

/** Every import, export-from, `require()` and `import()` of a TypeScript source. */
export function importsOf(file: string, source: string): Import[] {
  const found: Import[] = [];
  const sourceFile = ts.createSourceFile(file, source, ts.ScriptTarget.ES2022, true);
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      found.push({ from: file, specifier: node.moduleSpecifier.text, typeOnly: isTypeOnly(node) });
    } else if (
      ts.isCallExpression(node) &&
      (node.expression.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(node.expression) && node.expression.text === 'require')) &&
      node.arguments.length === 1 &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      found.push({ from: file, specifier: node.arguments[0].text, typeOnly: false });
    }
    ts.forEachChild(node, visit);
  };
  visit(sourceFile);
  return found;
}

function isTypeOnly(node: ts.ImportDeclaration | ts.ExportDeclaration): boolean {
  if (ts.isExportDeclaration(node)) {
    if (node.isTypeOnly) return true;
    const clause = node.exportClause;
    return !!clause && ts.isNamedExports(clause) && clause.elements.length > 0 && clause.elements.every((e) => e.isTypeOnly);
  }
  const clause = node.importClause;
  if (!clause) return false; // a side-effect import
  if (clause.isTypeOnly) return true;
  const bindings = clause.namedBindings;
  return !clause.name && !!bindings && ts.isNamedImports(bindings) && bindings.elements.length > 0 && bindings.elements.every((e) => e.isTypeOnly);
}

const within = (target: string, rule: string) => target === rule || target.startsWith(`${rule}/`) || target === rule.replace(/\.ts$/, '');

export function layerOf(file: string): Layer | undefined {
  return LAYERS.find((layer) => layer.paths.some((p) => within(file.replace(/\.ts$/, ''), p.replace(/\.ts$/, ''))));
}

/** The lib/ module an import names (`comm/connection`), or undefined for a package. */
function resolveInLib(from: string, specifier: string): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  return path.posix.join(path.posix.dirname(from), specifier).replace(/\/index$/, '');
}

function packageOf(specifier: string): string {
  const bare = specifier.replace(/^node:/, '');
  if (specifier.startsWith('node:') || builtinModules.includes(bare.split('/')[0])) return bare.split('/')[0] === 'buffer' ? 'buffer' : 'node';
  return specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0];
}

/** Every import that breaks the table, as `file → specifier: why`. */
export function violations(imports: Import[]): string[] {
  const found: string[] = [];
  for (const { from, specifier, typeOnly } of imports) {
    const layer = layerOf(from);
    if (!layer) {
      found.push(`${from}: belongs to no layer; add it to the table`);
      continue;
    }
    const target = resolveInLib(from, specifier);
    if (target === undefined) {
      const pkg = packageOf(specifier);
      const allowed = layer.packages.includes(pkg) || (pkg === 'buffer' && layer.packages.includes('node'));
      if (!allowed) found.push(`${from} → ${specifier}: ${layer.name} may not import ${pkg}`);
      continue;
    }
    if (layer.mayImport.includes('*')) continue;
    const targetLayer = layerOf(`${target}.ts`) ?? layerOf(target);
    if (targetLayer === layer) continue;
    const ok = layer.mayImport.some((rule) => {
      const typeRule = rule.endsWith('·');
      return within(target, rule.replace(/·$/, '')) && (!typeRule || typeOnly);
    });
    if (!ok) found.push(`${from} → ${specifier}: ${layer.name} may not import ${target}${typeOnly ? ' (even as a type)' : ''}`);
  }
  return found;
}

/** Every .ts file under lib/, relative to it. */
export function libFiles(lib: string): string[] {
  return (fs.readdirSync(lib, { recursive: true }) as string[])
    .map((f) => f.split(path.sep).join('/'))
    .filter((f) => f.endsWith('.ts'))
    .sort();
}
