/**
 * The code blocks of the docs, for the specs in this folder: fenced ```ts blocks of
 * Markdown (README.md) and of JSDoc `## Example` sections (lib/), type-checked together
 * in one TypeScript program, and run in a child `node` process.
 *
 * Blocks are checked as ES modules (top-level await allowed) under `--strict`, with
 * 'rxcomm' and 'rxcomm/testing' mapped to the sources (lib/) and jest's globals declared,
 * so that blocks written as jest specs (`it(...)`) check too. A block that runs is
 * transpiled on its own and imports the build (dist/), as a user's program would.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ts from 'typescript';

export const ROOT = path.resolve(__dirname, '../..');

/** One fenced code block, located in the file it comes from. */
export interface CodeBlock {
  /** `README.md:42`: the file, relative to the repository, and the line of the opening fence. */
  where: string;
  /** The path relative to the repository. */
  file: string;
  /** The 1-based line of the opening fence; the block's first line is the next one. */
  fenceLine: number;
  /** The fence's info string: `ts`, `ts run`, `sh`, ... */
  info: string;
  /** The first word of `info`. */
  lang: string;
  code: string;
}

/** Fenced blocks (``` or ~~~) of Markdown text, given as lines; `firstLine` is the number of lines[0]. */
export function fencedBlocks(lines: string[], file: string, firstLine = 1): CodeBlock[] {
  const blocks: CodeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^( {0,3})(`{3,}|~{3,})\s*([^`]*?)\s*$/.exec(lines[i]);
    if (!open) continue;
    const [, indent, fence, info] = open;
    const close = new RegExp(`^ {0,3}${fence[0]}{${fence.length},}\\s*$`);
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && !close.test(lines[j])) {
      body.push(lines[j].startsWith(indent) ? lines[j].slice(indent.length) : lines[j].trimStart());
      j++;
    }
    const fenceLine = firstLine + i;
    blocks.push({ where: `${file}:${fenceLine}`, file, fenceLine, info, lang: info.split(/\s+/)[0], code: body.join('\n') });
    i = j;
  }
  return blocks;
}

/** The fenced blocks of a Markdown file (a path relative to the repository). */
export function markdownBlocks(file: string): CodeBlock[] {
  return fencedBlocks(fs.readFileSync(path.join(ROOT, file), 'utf8').split(/\r?\n/), file);
}

/** Whether a block is written as a jest spec: it calls `it`, `test` or `describe` at its top level. */
export function isJestStyle(code: string): boolean {
  const sf = ts.createSourceFile('block.ts', code, ts.ScriptTarget.ES2022, true);
  return sf.statements.some(
    (s) =>
      ts.isExpressionStatement(s) &&
      ts.isCallExpression(s.expression) &&
      ts.isIdentifier(s.expression.expression) &&
      ['it', 'test', 'describe'].includes(s.expression.expression.text),
  );
}

// ---------------------------------------------------------------------------------------
// Type-checking

/** How the blocks are compiled: what a user of the package with strict settings has. */
const COMPILER_OPTIONS = ts.convertCompilerOptionsFromJson(
  {
    strict: true,
    target: 'es2022',
    module: 'es2022',
    moduleResolution: 'bundler',
    lib: ['es2022'],
    types: ['node', 'jest'],
    typeRoots: [path.join(ROOT, 'node_modules/@types')],
    esModuleInterop: true,
    skipLibCheck: true,
    noEmit: true,
    paths: {
      rxcomm: [path.join(ROOT, 'lib/index.ts')],
      'rxcomm/testing': [path.join(ROOT, 'lib/testing/index.ts')],
    },
  },
  ROOT,
);
if (COMPILER_OPTIONS.errors.length > 0) {
  throw new Error(ts.formatDiagnostics(COMPILER_OPTIONS.errors, formatHost()));
}

function formatHost(): ts.FormatDiagnosticsHost {
  return { getCanonicalFileName: (f) => f, getCurrentDirectory: () => ROOT, getNewLine: () => '\n' };
}

/** A block as a module of the program: its text is `prelude` lines, then the block's code. */
export interface BlockModule {
  block: CodeBlock;
  /** Lines added before the code (imports and declarations it takes for granted). */
  prelude: string[];
}

/** Where the in-memory modules live (never written): inside the repository, so node_modules resolve. */
const VIRTUAL_DIR = path.join(ROOT, 'spec/docs/.blocks');

function moduleFileName(module: BlockModule, index: number): string {
  return path.join(VIRTUAL_DIR, `${index}-${module.block.where.replace(/[^\w.-]+/g, '_')}.ts`);
}

function moduleText(module: BlockModule): string {
  // `export {}` keeps a block without imports a module; it adds no line before the code.
  return [...module.prelude, module.block.code, 'export {};'].join('\n');
}

/**
 * One program for many files: lib/ and the declaration files are parsed once and shared
 * by the programs made from it (`withFiles`).
 */
export class BlockProgram {
  private readonly virtual = new Map<string, string>();
  private readonly cache = new Map<string, ts.SourceFile>();
  private readonly host: ts.CompilerHost;
  private program: ts.Program | undefined;

  constructor() {
    const host = ts.createCompilerHost(COMPILER_OPTIONS.options, true);
    const { getSourceFile, fileExists, readFile } = host;
    host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) => {
      const text = this.virtual.get(fileName);
      if (text !== undefined) return ts.createSourceFile(fileName, text, languageVersion, true);
      let sf = this.cache.get(fileName);
      if (!sf) {
        sf = getSourceFile.call(host, fileName, languageVersion, onError, shouldCreate);
        if (sf) this.cache.set(fileName, sf);
      }
      return sf;
    };
    host.fileExists = (fileName) => this.virtual.has(fileName) || fileExists.call(host, fileName);
    host.readFile = (fileName) => this.virtual.get(fileName) ?? readFile.call(host, fileName);
    this.host = host;
  }

  /** A program of `files` (name → text, in memory), reusing what earlier programs parsed. */
  withFiles(files: Map<string, string>): ts.Program {
    this.virtual.clear();
    for (const [name, text] of files) this.virtual.set(name, text);
    this.program = ts.createProgram({
      rootNames: [...files.keys()],
      options: COMPILER_OPTIONS.options,
      host: this.host,
      oldProgram: this.program,
    });
    return this.program;
  }

  /**
   * Type-checks every module in one program. Returns, per block (`where`), its
   * diagnostics as `README.md:57:12 TS2304: Cannot find name 'x'.`, empty if it checks.
   */
  check(modules: BlockModule[]): Map<string, string[]> {
    const names = modules.map(moduleFileName);
    const program = this.withFiles(new Map(modules.map((m, i) => [names[i], moduleText(m)])));
    const result = new Map<string, string[]>();
    modules.forEach((module, i) => {
      const sf = program.getSourceFile(names[i])!;
      const diagnostics = [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)];
      result.set(module.block.where, diagnostics.map((d) => describeDiagnostic(d, module)));
    });
    return result;
  }
}

function describeDiagnostic(diagnostic: ts.Diagnostic, module: BlockModule): string {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n  ');
  const code = `TS${diagnostic.code}`;
  if (!diagnostic.file || diagnostic.start === undefined) return `${module.block.where} ${code}: ${message}`;
  const { line, character } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
  const lineInBlock = line - module.prelude.length; // 0-based
  if (lineInBlock < 0) {
    return `${module.block.where} (in the prelude: ${module.prelude[line].trim()}) ${code}: ${message}`;
  }
  const codeLine = module.block.code.split('\n')[lineInBlock] ?? '';
  return `${module.block.file}:${module.block.fenceLine + 1 + lineInBlock}:${character + 1} ${code}: ${message}\n    ${codeLine.trim()}`;
}

// ---------------------------------------------------------------------------------------
// JSDoc examples

/** An example from a JSDoc comment in lib/, and whether that comment documents the public API. */
export interface JsdocExample extends CodeBlock {
  /** The comment documents something exported by 'rxcomm' or 'rxcomm/testing' (or a module that does). */
  isPublic: boolean;
}

/** The modules a JSDoc example may use without importing, in order of precedence. */
export const PRELUDE_MODULES = ['rxcomm', 'rxcomm/testing', 'rxjs', 'rxjs/testing'] as const;

/** What JSDoc examples may use without declaring it: these names and their types. */
export const PRELUDE_AMBIENTS: Record<string, { type: string; typeFrom: string; typeName: string }> = {
  comm: { type: 'Comm', typeFrom: 'rxcomm', typeName: 'Comm' },
  listener: { type: 'Listener', typeFrom: 'rxcomm', typeName: 'Listener' },
  source$: { type: 'Observable<unknown>', typeFrom: 'rxjs', typeName: 'Observable' },
};

/** The `.ts` files under `dir` (relative to the repository), recursively, sorted. */
export function sourceFiles(dir: string): string[] {
  const found: string[] = [];
  const walk = (rel: string) => {
    for (const entry of fs.readdirSync(path.join(ROOT, rel), { withFileTypes: true })) {
      const child = path.posix.join(rel, entry.name);
      if (entry.isDirectory()) walk(child);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) found.push(child);
    }
  };
  walk(dir);
  return found.sort();
}

/**
 * The ```ts blocks in `## Example` sections of the JSDoc comments of lib/, each marked
 * public or not, and the export lists of PRELUDE_MODULES, from one program.
 */
export function jsdocExamples(program: BlockProgram): { examples: JsdocExample[]; moduleExports: Map<string, Set<string>> } {
  const stubName = path.join(VIRTUAL_DIR, 'exports.ts');
  const stub = PRELUDE_MODULES.map((m, i) => `import * as m${i} from '${m}';`).join('\n');
  const files = sourceFiles('lib');
  const tsProgram = program.withFiles(new Map([[stubName, stub]]));
  const checker = tsProgram.getTypeChecker();
  const stubFile = tsProgram.getSourceFile(stubName)!;

  // The export lists, and the declarations behind the public ones.
  const moduleExports = new Map<string, Set<string>>();
  const publicNodes = new Set<ts.Node>();
  stubFile.statements.filter(ts.isImportDeclaration).forEach((decl, i) => {
    const moduleSymbol = checker.getSymbolAtLocation(decl.moduleSpecifier);
    if (!moduleSymbol) throw new Error(`cannot resolve '${PRELUDE_MODULES[i]}' for the JSDoc prelude`);
    const symbols = checker.getExportsOfModule(moduleSymbol);
    moduleExports.set(PRELUDE_MODULES[i], new Set(symbols.map((s) => s.name)));
    if (!PRELUDE_MODULES[i].startsWith('rxcomm')) return;
    for (const symbol of symbols) {
      const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
      for (const declaration of target.declarations ?? []) {
        publicNodes.add(ts.isVariableDeclaration(declaration) ? declaration.parent.parent : declaration);
        if (ts.isClassDeclaration(declaration) || ts.isInterfaceDeclaration(declaration)) {
          for (const member of declaration.members) publicNodes.add(member);
        }
      }
    }
  });

  // Comments (by file and position) that document public declarations, or head a module that has some.
  const publicComments = new Set<string>();
  for (const node of publicNodes) {
    const sf = node.getSourceFile();
    const first = sf.statements[0];
    for (const at of [node, first]) {
      for (const range of ts.getLeadingCommentRanges(sf.text, at.pos) ?? []) publicComments.add(`${sf.fileName}#${range.pos}`);
    }
  }

  const examples: JsdocExample[] = [];
  for (const file of files) {
    const fileName = path.join(ROOT, file);
    const text = tsProgram.getSourceFile(fileName)?.text ?? fs.readFileSync(fileName, 'utf8');
    for (const match of text.matchAll(/\/\*\*[\s\S]*?\*\//g)) {
      const comment = match[0];
      if (!/^\s*\*?\s*## Example/m.test(comment)) continue;
      const firstLine = text.slice(0, match.index).split('\n').length;
      const lines = comment.split('\n').map((line, i) =>
        (i === 0 ? line.replace(/^\/\*\*\s?/, '') : line.replace(/^\s*\*(?!\/) ?/, '')).replace(/\s*\*\/$/, ''),
      );
      // The section runs from its heading to the next heading of level 1 or 2, or a tag.
      const start = lines.findIndex((line) => /^## Example/.test(line));
      let end = lines.findIndex((line, i) => i > start && /^(#{1,2} |@\w)/.test(line));
      if (end < 0) end = lines.length;
      const isPublic = publicComments.has(`${fileName}#${match.index}`);
      for (const block of fencedBlocks(lines.slice(start, end), file, firstLine + start)) {
        if (block.lang === 'ts') examples.push({ ...block, isPublic });
      }
    }
  }
  return { examples, moduleExports };
}

/** The names a block declares at its top level, and the identifiers it refers to. */
function namesOf(code: string): { declared: Set<string>; used: Set<string> } {
  const sf = ts.createSourceFile('block.ts', code, ts.ScriptTarget.ES2022, true);
  const declared = new Set<string>();
  const bind = (name: ts.BindingName) => {
    if (ts.isIdentifier(name)) declared.add(name.text);
    else for (const element of name.elements) if (!ts.isOmittedExpression(element)) bind(element.name);
  };
  for (const statement of sf.statements) {
    if (ts.isVariableStatement(statement)) statement.declarationList.declarations.forEach((d) => bind(d.name));
    else if (ts.isImportDeclaration(statement)) {
      const clause = statement.importClause;
      if (clause?.name) declared.add(clause.name.text);
      const bindings = clause?.namedBindings;
      if (bindings && ts.isNamespaceImport(bindings)) declared.add(bindings.name.text);
      else bindings?.elements.forEach((e) => declared.add(e.name.text));
    } else if (
      (ts.isFunctionDeclaration(statement) || ts.isClassDeclaration(statement) || ts.isInterfaceDeclaration(statement) ||
        ts.isTypeAliasDeclaration(statement) || ts.isEnumDeclaration(statement)) &&
      statement.name
    ) {
      declared.add(statement.name.text);
    }
  }
  const used = new Set<string>();
  const visit = (node: ts.Node) => {
    if (ts.isIdentifier(node)) {
      const parent = node.parent;
      const isMemberName =
        (ts.isPropertyAccessExpression(parent) && parent.name === node) ||
        (ts.isPropertyAssignment(parent) && parent.name === node) ||
        (ts.isQualifiedName(parent) && parent.right === node) ||
        (ts.isBindingElement(parent) && parent.propertyName === node);
      if (!isMemberName) used.add(node.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return { declared, used };
}

/**
 * The prelude of a JSDoc example: imports of the names it uses from PRELUDE_MODULES
 * (the first module exporting a name wins) and PRELUDE_AMBIENTS, unless it declares them.
 */
export function jsdocPrelude(code: string, moduleExports: Map<string, Set<string>>): string[] {
  const { declared, used } = namesOf(code);
  const imports = new Map<string, Set<string>>(PRELUDE_MODULES.map((m) => [m, new Set<string>()]));
  const declarations: string[] = [];
  for (const [name, ambient] of Object.entries(PRELUDE_AMBIENTS)) {
    if (!used.has(name) || declared.has(name)) continue;
    declarations.push(`declare const ${name}: ${ambient.type};`);
    if (!declared.has(ambient.typeName)) used.add(ambient.typeName);
  }
  for (const name of used) {
    if (declared.has(name) || name in PRELUDE_AMBIENTS) continue;
    const from = PRELUDE_MODULES.find((m) => moduleExports.get(m)?.has(name));
    if (from) imports.get(from)!.add(name);
  }
  const lines = [...imports]
    .filter(([, names]) => names.size > 0)
    .map(([m, names]) => `import { ${[...names].sort().join(', ')} } from '${m}';`);
  return [...lines, ...declarations];
}

// ---------------------------------------------------------------------------------------
// Running

const requireFromRoot = createRequire(path.join(ROOT, 'package.json'));

/**
 * What a running block's imports resolve to: the build for rxcomm, and the same rxjs
 * (its CommonJS build) that the build loads, so there is one rxjs in the process.
 */
function runtimeSpecifier(specifier: string, where: string): string {
  const dist: Record<string, string> = { rxcomm: 'dist/index.js', 'rxcomm/testing': 'dist/testing/index.js' };
  if (dist[specifier]) return pathToFileURL(path.join(ROOT, dist[specifier])).href;
  if (specifier === 'rxjs' || specifier === 'rxjs/testing') return pathToFileURL(requireFromRoot.resolve(specifier)).href;
  if (specifier.startsWith('node:') || builtinModules.includes(specifier)) return specifier;
  throw new Error(
    `${where} imports '${specifier}': blocks may import only rxcomm, rxcomm/testing, rxjs, rxjs/testing and Node built-ins`,
  );
}

/** Fails with a clear message unless dist/ holds a build at least as new as lib/. */
export function checkBuild(): void {
  const entries = ['dist/index.js', 'dist/testing/index.js'].map((f) => path.join(ROOT, f));
  const missing = entries.filter((f) => !fs.existsSync(f));
  if (missing.length > 0) {
    throw new Error(`${missing.map((f) => path.relative(ROOT, f)).join(', ')} missing: run \`npm run build\` first (\`npm test\` does)`);
  }
  const built = Math.min(...entries.map((f) => fs.statSync(f).mtimeMs));
  const newer = sourceFiles('lib').filter((f) => fs.statSync(path.join(ROOT, f)).mtimeMs > built);
  if (newer.length > 0) {
    throw new Error(`dist/ is older than ${newer.slice(0, 3).join(', ')}${newer.length > 3 ? ', …' : ''}: run \`npm run build\` first (\`npm test\` does)`);
  }
}

/** The block as an ES module that imports the build: `.mjs` text. */
export function transpileBlock(block: CodeBlock): string {
  const rewrite: ts.TransformerFactory<ts.SourceFile> = (context) => (sf) => {
    const visit = (node: ts.Node): ts.Node => {
      if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
        const specifier = ts.factory.createStringLiteral(runtimeSpecifier(node.moduleSpecifier.text, block.where));
        return ts.isImportDeclaration(node)
          ? ts.factory.updateImportDeclaration(node, node.modifiers, node.importClause, specifier, node.attributes)
          : ts.factory.updateExportDeclaration(node, node.modifiers, node.isTypeOnly, node.exportClause, specifier, node.attributes);
      }
      return ts.visitEachChild(node, visit, context);
    };
    return ts.visitNode(sf, visit) as ts.SourceFile;
  };
  const { outputText, diagnostics } = ts.transpileModule(block.code, {
    compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, sourceMap: false },
    fileName: `${block.where.replace(/[^\w.-]+/g, '_')}.ts`,
    reportDiagnostics: true,
    transformers: { before: [rewrite] },
  });
  if (diagnostics && diagnostics.length > 0) throw new Error(ts.formatDiagnostics(diagnostics, formatHost()));
  return outputText;
}

export interface RunResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

/** Runs the block as `dir/<name>.mjs` in a child `node`, for at most `timeoutMs`. */
export function runBlock(block: CodeBlock, dir: string, timeoutMs = 30_000): Promise<RunResult> {
  const file = path.join(dir, `${block.where.replace(/[^\w.-]+/g, '_')}.mjs`);
  fs.writeFileSync(file, transpileBlock(block));
  return new Promise((resolve) => {
    execFile(process.execPath, [file], { cwd: dir, timeout: timeoutMs, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      const failure = error as (Error & { code?: number | string; killed?: boolean; signal?: NodeJS.Signals | null }) | null;
      resolve({
        exitCode: failure ? (typeof failure.code === 'number' ? failure.code : null) : 0,
        signal: failure?.signal ?? null,
        timedOut: Boolean(failure?.killed),
        stdout,
        stderr,
      });
    });
  });
}

/** Why a run failed, or undefined if it exited by itself with 0 and printed nothing to stderr. */
export function runProblem(block: CodeBlock, result: RunResult, timeoutMs = 30_000): string | undefined {
  const output = `\n--- stdout\n${result.stdout}--- stderr\n${result.stderr}`;
  if (result.timedOut) {
    return `${block.where} did not exit within ${timeoutMs / 1000} s: it must close what it opens (listeners, comms, timers)${output}`;
  }
  if (result.exitCode !== 0) return `${block.where} exited with ${result.exitCode ?? result.signal}${output}`;
  if (result.stderr.trim() !== '') return `${block.where} wrote to stderr (an unhandled error or warning)${output}`;
  return undefined;
}
