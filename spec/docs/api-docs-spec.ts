/**
 * Every export of 'rxcomm' and 'rxcomm/testing' is documented for the API site that
 * `npm run docs` builds with typedoc (typedoc.json), so that the site stays complete as
 * the API grows. typedoc itself fails on undocumented members and broken links; what it
 * cannot check is held here.
 *
 * Conventions for the doc comment of an export (the `/** ... *\/` right before its
 * declaration; for an overloaded function, before the first overload):
 * - It says what the export is, in prose, before any tag, and is not `@internal`
 *   (tsconfig.build.json strips those from the published types).
 * - It has a `## Example` section with a ```ts block, which spec/docs/jsdoc-examples-spec.ts
 *   type-checks (see its conventions: imports may be left out).
 * - It names its layer with `@group`, one of typedoc.json's `groupOrder`, so the site is
 *   grouped by layer as the README's API sections are.
 * README.md links into the built site (docs/api/): each such link names a page typedoc
 * makes for an export, of the right kind.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';
import { BlockProgram, ROOT } from './code-blocks';

const MODULES = ['rxcomm', 'rxcomm/testing'] as const;

/** typedoc.json, the site's configuration. */
const typedocConfig = JSON.parse(fs.readFileSync(path.join(ROOT, 'typedoc.json'), 'utf8')) as {
  entryPoints: string[];
  out: string;
  groupOrder: string[];
};
const GROUPS = typedocConfig.groupOrder.filter((group) => group !== '*');

interface PublicExport {
  /** `rxcomm/testing:createCommPair`. */
  name: string;
  module: (typeof MODULES)[number];
  exportName: string;
  kind: ts.SyntaxKind;
  /** `lib/testing/pairs.ts:58`: where the declaration is. */
  where: string;
  /** The doc comment right before the declaration, or undefined. */
  comment: string | undefined;
}

/** The last `/** ... *\/` comment right before `node`, if any. */
function docCommentOf(node: ts.Node): string | undefined {
  const sf = node.getSourceFile();
  const ranges = ts.getLeadingCommentRanges(sf.text, node.pos) ?? [];
  const last = ranges[ranges.length - 1];
  const text = last && sf.text.slice(last.pos, last.end);
  return text?.startsWith('/**') ? text : undefined;
}

/** The exports of MODULES, each with the declaration typedoc documents it by. */
function publicExports(): PublicExport[] {
  const stubName = path.join(ROOT, 'spec/docs/.blocks/api-exports.ts');
  const stub = MODULES.map((m, i) => `import * as m${i} from '${m}';`).join('\n');
  const program = new BlockProgram().withFiles(new Map([[stubName, stub]]));
  const checker = program.getTypeChecker();
  const found: PublicExport[] = [];
  program.getSourceFile(stubName)!.statements.filter(ts.isImportDeclaration).forEach((decl, i) => {
    const moduleSymbol = checker.getSymbolAtLocation(decl.moduleSpecifier);
    if (!moduleSymbol) throw new Error(`cannot resolve '${MODULES[i]}'`);
    for (const symbol of checker.getExportsOfModule(moduleSymbol)) {
      const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
      const declaration = target.declarations?.[0];
      if (!declaration) throw new Error(`${MODULES[i]}: ${symbol.name} has no declaration`);
      const node = ts.isVariableDeclaration(declaration) ? declaration.parent.parent : declaration;
      const sf = node.getSourceFile();
      const line = sf.getLineAndCharacterOfPosition(node.getStart()).line + 1;
      found.push({
        name: `${MODULES[i]}:${symbol.name}`,
        module: MODULES[i],
        exportName: symbol.name,
        kind: declaration.kind,
        where: `${path.relative(ROOT, sf.fileName)}:${line}`,
        comment: docCommentOf(node),
      });
    }
  });
  return found;
}

/** The comment's lines without the `/**`, `*` and `*\/` decoration. */
function commentLines(comment: string): string[] {
  return comment
    .split('\n')
    .map((line, i) => (i === 0 ? line.replace(/^\/\*\*\s?/, '') : line.replace(/^\s*\*(?!\/) ?/, '')).replace(/\s*\*\/$/, ''));
}

/** What is wrong with an export's doc comment: empty if nothing. */
function problemsOf(entry: PublicExport): string[] {
  if (entry.comment === undefined) return ['no doc comment'];
  const lines = commentLines(entry.comment);
  const problems: string[] = [];
  const firstTag = lines.findIndex((line) => /^@\w/.test(line));
  const prose = lines.slice(0, firstTag < 0 ? lines.length : firstTag).filter((line) => line.trim() !== '');
  if (prose.length === 0 || /^#/.test(prose[0])) problems.push('no description before its example or tags');
  if (lines.some((line) => /@internal\b/.test(line))) problems.push('@internal, yet exported');
  const example = lines.findIndex((line) => /^## Example/.test(line));
  const sectionEnd = lines.findIndex((line, i) => i > example && /^(#{1,2} |@\w)/.test(line));
  const section = example < 0 ? [] : lines.slice(example, sectionEnd < 0 ? lines.length : sectionEnd);
  if (!section.some((line) => /^```ts\b/.test(line))) problems.push('no ```ts block under ## Example');
  const groups = lines.filter((line) => /^@group\b/.test(line)).map((line) => line.replace(/^@group\s+/, '').trim());
  if (groups.length !== 1 || !GROUPS.includes(groups[0])) {
    problems.push(`@group ${groups.join(', ') || '(none)'}: want one of ${GROUPS.join(', ')}`);
  }
  return problems;
}

/** The folder typedoc writes pages of each kind to (its default router, `kind`). */
function pageFolder(kind: ts.SyntaxKind): string | undefined {
  switch (kind) {
    case ts.SyntaxKind.ClassDeclaration:
      return 'classes';
    case ts.SyntaxKind.InterfaceDeclaration:
      return 'interfaces';
    case ts.SyntaxKind.FunctionDeclaration:
      return 'functions';
    case ts.SyntaxKind.TypeAliasDeclaration:
      return 'types';
    case ts.SyntaxKind.VariableDeclaration:
      return 'variables';
    default:
      return undefined;
  }
}

/** The page typedoc makes for an export: `classes/rxcomm.Comm.html`, `variables/rxcomm.status_.html`. */
function pageOf(entry: PublicExport): string | undefined {
  const folder = pageFolder(entry.kind);
  const moduleName = entry.module.replace(/[^\w]/g, '_');
  return folder && `${folder}/${moduleName}.${entry.exportName.replace(/[^\w]/g, '_')}.html`;
}

const apiExports = publicExports();

describe('API docs', () => {
  it('finds the exports of both entry points', () => {
    expect(apiExports.filter((e) => e.module === 'rxcomm').length).toBeGreaterThan(50);
    expect(apiExports.filter((e) => e.module === 'rxcomm/testing').length).toBeGreaterThan(3);
  });

  it("builds the site from the package's entry points", () => {
    const tsconfig = ts.readConfigFile(path.join(ROOT, 'tsconfig.json'), ts.sys.readFile).config as {
      compilerOptions: { paths: Record<string, string[]> };
    };
    expect(typedocConfig.entryPoints).toEqual(MODULES.map((m) => tsconfig.compilerOptions.paths[m][0]));
  });

  it.each(apiExports.map((e) => [e.name, e] as const))('%s has a description, an example and a layer', (_name, entry) => {
    expect({ where: entry.where, problems: problemsOf(entry) }).toEqual({ where: entry.where, problems: [] });
  });

  it("README's links into the site name pages of exports", () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const out = typedocConfig.out.replace(/^\.\//, '').replace(/\/$/, '');
    const links = [...readme.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]).filter((href) => href.startsWith(`${out}/`));
    expect(links.length).toBeGreaterThan(0);
    const pages = new Set(apiExports.map(pageOf).filter((page) => page !== undefined));
    const modulePages = new Set(MODULES.map((m) => `modules/${m.replace(/[^\w]/g, '_')}.html`));
    const groupAnchors = new Set(GROUPS.map((group) => group.toLowerCase().replace(/[^a-z0-9]+/g, '-')));
    const broken = links.filter((href) => {
      const [page, anchor] = href.slice(out.length + 1).split('#');
      if (page === 'index.html' && anchor === undefined) return false;
      if (modulePages.has(page)) return anchor !== undefined && !groupAnchors.has(anchor);
      return !pages.has(page);
    });
    expect(broken).toEqual([]);
  });
});
