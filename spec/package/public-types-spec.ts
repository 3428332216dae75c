/**
 * Every type a user meets in a public signature can be named: each type declared in this
 * package that the declarations of `rxcomm` and `rxcomm/testing` refer to (parameters,
 * results, public and protected members, heritage, type aliases, transitively) is exported
 * from one of the entry points (Node's, and the browser ones that bundlers take).
 */
import * as path from 'node:path';
import * as ts from 'typescript';
import { ensureBuilt, root } from './build';

const dist = path.join(root, 'dist');
const entries = {
  rxcomm: path.join(dist, 'index.d.ts'),
  'rxcomm/testing': path.join(dist, 'testing', 'index.d.ts'),
  'rxcomm (browser)': path.join(dist, 'browser.d.ts'),
  'rxcomm/testing (browser)': path.join(dist, 'testing', 'browser.d.ts'),
};

const inPackage = (decl: ts.Declaration) => decl.getSourceFile().fileName.startsWith(`${dist}/`);

function isHidden(node: ts.Node): boolean {
  // Private members carry no types in declarations, but skip them explicitly.
  if (ts.canHaveModifiers(node) && ts.getModifiers(node)?.some((m) => m.kind === ts.SyntaxKind.PrivateKeyword)) return true;
  const name = (node as { name?: ts.Node }).name;
  return name !== undefined && ts.isPrivateIdentifier(name);
}

interface Missing {
  name: string;
  declaredIn: string;
  usedBy: Set<string>;
}

/** The package's types that public declarations reach and that no entry point exports. */
function findUnexportedTypes(): Missing[] {
  const program = ts.createProgram(Object.values(entries), {
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    target: ts.ScriptTarget.ES2022,
    types: ['node'],
    typeRoots: [path.join(root, 'node_modules', '@types')],
    noEmit: true,
  });
  const checker = program.getTypeChecker();
  const resolve = (symbol: ts.Symbol) => (symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol);

  const exported = new Set<ts.Symbol>();
  const queue: [ts.Symbol, string][] = [];
  for (const [entry, file] of Object.entries(entries)) {
    const source = program.getSourceFile(file);
    const moduleSymbol = source && checker.getSymbolAtLocation(source);
    if (!moduleSymbol) throw new Error(`${file} is not a module: is dist/ built?`);
    for (const symbol of checker.getExportsOfModule(moduleSymbol)) {
      const target = resolve(symbol);
      exported.add(target);
      queue.push([target, `${entry}: ${symbol.name}`]);
    }
  }

  const missing = new Map<ts.Symbol, Missing>();
  const visited = new Set<ts.Symbol>();

  const reference = (symbol: ts.Symbol | undefined, usedBy: string) => {
    if (!symbol) return;
    let target = resolve(symbol);
    if (target.flags & (ts.SymbolFlags.TypeParameter | ts.SymbolFlags.Property | ts.SymbolFlags.Method)) return;
    // An enum member is named through its enum.
    if (target.flags & ts.SymbolFlags.EnumMember) target = (target as { parent?: ts.Symbol }).parent ?? target;
    const decls = target.declarations?.filter(inPackage) ?? [];
    if (decls.length === 0) return; // rxjs, Node, the standard library
    if (!exported.has(target)) {
      const entry = missing.get(target) ?? {
        name: target.name,
        declaredIn: path.relative(root, decls[0].getSourceFile().fileName),
        usedBy: new Set<string>(),
      };
      entry.usedBy.add(usedBy);
      missing.set(target, entry);
    }
    queue.push([target, target.name]);
  };

  const walk = (node: ts.Node, usedBy: string): void => {
    if (isHidden(node)) return;
    if (ts.isTypeReferenceNode(node)) {
      reference(checker.getSymbolAtLocation(node.typeName), usedBy);
    } else if (ts.isExpressionWithTypeArguments(node)) {
      reference(checker.getSymbolAtLocation(node.expression), usedBy);
    } else if (ts.isTypeQueryNode(node)) {
      reference(checker.getSymbolAtLocation(node.exprName), usedBy);
    } else if (ts.isImportTypeNode(node)) {
      const type = checker.getTypeFromTypeNode(node);
      reference(type.aliasSymbol ?? type.getSymbol(), usedBy);
    }
    ts.forEachChild(node, (child) => walk(child, usedBy));
  };

  for (let item = queue.shift(); item; item = queue.shift()) {
    const [symbol, usedBy] = item;
    if (visited.has(symbol)) continue;
    visited.add(symbol);
    for (const decl of symbol.declarations?.filter(inPackage) ?? []) {
      // A module re-exported as a namespace: its exports are reached through it.
      if (ts.isSourceFile(decl)) continue;
      // Walk the declaration itself, not the statement around it (a variable's siblings).
      walk(decl, usedBy);
    }
  }
  return [...missing.values()].sort((a, b) => a.name.localeCompare(b.name));
}

let unexported: Missing[];

beforeAll(async () => {
  await ensureBuilt();
  unexported = findUnexportedTypes();
}, 120_000);

describe('public types', () => {
  it('should export every type of this package that a public signature uses', () => {
    const report = unexported.map((m) => `${m.name} (${m.declaredIn}), used by ${[...m.usedBy].join(', ')}`);
    expect(report).toEqual([]);
  });
});
