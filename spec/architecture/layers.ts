/**
 * The layers of lib/ and what each may import: the table the README's layout section
 * shows, and the checker that holds every import in lib/ to it.
 *
 * A rule names a module path under lib/ without extension (`comm/connection`), or a
 * folder (`registry` is all of lib/registry/ and lib/registry.ts). A trailing `·` allows
 * type-only imports (`import type`, or imports whose every name is a type). A layer may
 * always import its own files.
 *
 * Apart from the table, `browserViolations` walks the imports from the browser entry
 * points (`BROWSER_ENTRIES`) and fails on any path that reaches a Node built-in or `ws`.
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
  /** Packages it may import: `rxjs`, `msgpackr`, `ws`, `node` (Node's built-ins), `buffer` (Node's, alone). */
  packages: string[];
}

const anything = ['*'];

export const LAYERS: Layer[] = [
  { name: 'entry', paths: ['index.ts', 'browser.ts', 'api.ts'], mayImport: anything, packages: [] },
  {
    name: 'platform/node',
    paths: ['platform/node.ts', 'platform/discover.ts', 'platform/node-compression.ts'],
    // Names the built-in transports; discover.ts reads installed packages' manifests, as Dask reads entry points;
    // node-compression.ts installs Node's zlib and the lz4 and zstd encoders that need Node.
    mayImport: ['transports', 'registry', 'protocol/compression', 'options', 'status', 'errors'],
    packages: ['node', 'lz4-napi', '@bokuweb/zstd-wasm'],
  },
  {
    name: 'platform/browser',
    paths: ['platform/browser.ts'],
    mayImport: ['transports/inproc', 'transports/ws', 'registry', 'protocol/compression', 'options', 'status', 'errors'],
    packages: [],
  },
  // The `rxcomm` command: the public API only, as a user's program would use it.
  { name: 'cli', paths: ['cli'], mayImport: ['index'], packages: ['rxjs', 'node'] },
  { name: 'testing', paths: ['testing'], mayImport: anything, packages: ['rxjs', 'node'] },
  {
    // Above comms, as Dask's core.py: uses connect and comms, never a transport.
    name: 'rpc',
    paths: ['rpc'],
    mayImport: ['connect', 'listen', 'comm', 'options·', 'errors', 'status'],
    packages: ['rxjs'],
  },
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
    mayImport: ['protocol', 'comm/connection·', 'registry/backend·', 'addresses', 'errors'],
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
    // Before transports/ws: a file belongs to the first layer whose paths hold it.
    name: 'transports/ws/node',
    paths: ['transports/ws/node'],
    mayImport: ['transports/ws', 'transports/socket', 'protocol', 'comm/connection·', 'registry/backend·', 'addresses', 'errors'],
    packages: ['rxjs', 'node', 'ws'],
  },
  {
    // The platform-neutral part (the connection, the browser backend): no Node, no `ws`.
    name: 'transports/ws',
    paths: ['transports/ws'],
    mayImport: ['protocol', 'comm/connection·', 'registry/backend·', 'addresses', 'errors'],
    packages: ['rxjs'],
  },
  {
    name: 'transports/inproc',
    paths: ['transports/inproc'],
    mayImport: ['comm/connection·', 'registry/backend·', 'addresses', 'errors'],
    packages: ['rxjs'],
  },
  { name: 'registry', paths: ['registry'], mayImport: ['comm/connection·', 'protocol/codec·', 'errors'], packages: ['rxjs'] },
  { name: 'comm', paths: ['comm'], mayImport: ['errors', 'status'], packages: ['rxjs'] },
  // The pure-JS compression formats: readable in browsers too.
  { name: 'protocol', paths: ['protocol'], mayImport: ['errors'], packages: ['msgpackr', 'fzstd', 'fflate'] },
  { name: 'addresses', paths: ['addresses.ts'], mayImport: ['errors'], packages: [] },
  { name: 'errors', paths: ['errors.ts'], mayImport: [], packages: [] },
  { name: 'status', paths: ['status.ts'], mayImport: [], packages: ['rxjs'] },
];

/** The entry points a browser bundle starts from: nothing they reach may need Node. */
export const BROWSER_ENTRIES = ['browser.ts', 'testing/browser.ts'];

/** Packages a browser bundle cannot hold: Node's built-ins, and `ws` (a Node server and client). */
const NOT_IN_BROWSERS = new Set(['node', 'buffer', 'ws']);

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

/**
 * The lib/ file a relative import names (`comm/connection.ts`, or `registry/index.ts` for
 * a folder), or undefined for a package or a file `exists` does not know.
 */
function fileInLib(from: string, specifier: string, exists: (file: string) => boolean): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  const target = path.posix.join(path.posix.dirname(from), specifier).replace(/\.(js|ts)$/, '');
  return [`${target}.ts`, `${target}/index.ts`].find(exists);
}

/**
 * Every Node built-in (or `ws`) that a browser bundle of `entries` would take in, as the
 * chain of files that reaches it: `browser.ts → api.ts → … → buffer`. Value imports,
 * `export ... from`, `require()` and `import()` are followed, lazy ones too (a bundler
 * follows them as well); type-only imports are not (they leave no code).
 */
export function browserViolations(entries: string[], sourceOf: (file: string) => string | undefined): string[] {
  const found: string[] = [];
  const exists = (file: string) => sourceOf(file) !== undefined;
  const via = new Map<string, string[]>(entries.map((entry) => [entry, [entry]]));
  const queue = [...entries];
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    const source = sourceOf(file);
    if (source === undefined) continue;
    const chain = via.get(file)!;
    for (const { specifier, typeOnly } of importsOf(file, source)) {
      if (typeOnly) continue;
      const target = fileInLib(file, specifier, exists);
      if (target !== undefined) {
        if (!via.has(target)) {
          via.set(target, [...chain, target]);
          queue.push(target);
        }
      } else if (!specifier.startsWith('.') && NOT_IN_BROWSERS.has(packageOf(specifier))) {
        found.push([...chain, specifier].join(' → '));
      }
    }
  }
  return found;
}
