/**
 * The package a user installs: what `npm pack` ships, that its source and declaration maps
 * resolve inside it, that its types compile in a consumer under every module resolution
 * TypeScript users have, and that it loads from plain Node as CommonJS and as ESM.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ts from 'typescript';
import { ensureBuilt, installPacked, npmPack, root, staleOutputs } from './build';

let packed: string[];

beforeAll(async () => {
  await ensureBuilt();
  packed = npmPack('--dry-run').files.map((f) => f.path);
}, 120_000);

describe('npm pack', () => {
  it('should ship the build, its maps, the sources they point to and the legal files', () => {
    const expected = [
      'package.json',
      'README.md',
      'LICENSE',
      'CHANGELOG.md',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/index.js.map',
      'dist/index.d.ts.map',
      'dist/testing/index.js',
      'dist/testing/index.d.ts',
      'dist/browser.js',
      'dist/browser.d.ts',
      'dist/testing/browser.js',
      'dist/testing/browser.d.ts',
      'lib/index.ts',
      'lib/browser.ts',
      'lib/testing/index.ts',
      'lib/testing/browser.ts',
    ];
    expect(expected.filter((f) => !packed.includes(f))).toEqual([]);
  });

  it('should ship nothing from the repository that is not the package', () => {
    const unwanted = packed.filter(
      (f) =>
        /^(spec|marbles|bench|interop|examples|dist-scripts|\.ci)\//.test(f) ||
        /(^|\/)node_modules\//.test(f) ||
        /(^|\/)tsconfig[^/]*\.json$/.test(f) ||
        /\.tsbuildinfo$/.test(f) ||
        /(^|\/)(jest\.config\.js|package-lock\.json|\.gitignore)$/.test(f) ||
        /-spec\.ts$/.test(f),
    );
    expect(unwanted).toEqual([]);
  });

  it('should ship no build output of a source that is gone (`npm run build` empties dist/ first)', () => {
    const stale = new Set(staleOutputs());
    expect(packed.filter((f) => stale.has(f))).toEqual([]);
  });

  it('should ship a source map and a declaration map for every built file', () => {
    const missing = packed
      .filter((f) => f.startsWith('dist/') && /\.(js|d\.ts)$/.test(f))
      .filter((f) => !packed.includes(`${f}.map`));
    expect(missing).toEqual([]);
  });

  it('should point every map at sources in the package, with the sources inlined', () => {
    const maps = packed.filter((f) => f.endsWith('.map'));
    expect(maps.length).toBeGreaterThan(0);
    const problems: string[] = [];
    for (const map of maps) {
      const json = JSON.parse(fs.readFileSync(path.join(root, map), 'utf8')) as {
        file: string;
        sourceRoot?: string;
        sources: string[];
        sourcesContent?: (string | null)[];
      };
      const dir = path.posix.dirname(map);
      if (!packed.includes(path.posix.join(dir, json.file))) problems.push(`${map}: file ${json.file} is not in the package`);
      json.sources.forEach((source, i) => {
        const resolved = path.posix.normalize(path.posix.join(dir, json.sourceRoot ?? '', source));
        if (!packed.includes(resolved)) problems.push(`${map}: source ${source} (${resolved}) is not in the package`);
        else if (map.endsWith('.js.map') && json.sourcesContent?.[i] !== fs.readFileSync(path.join(root, resolved), 'utf8')) {
          problems.push(`${map}: sourcesContent of ${source} is not the shipped source`);
        }
      });
    }
    expect(problems).toEqual([]);
  });

  it('should strip @internal members from the declarations', () => {
    const leaks = packed
      .filter((f) => f.endsWith('.d.ts'))
      .filter((f) => fs.readFileSync(path.join(root, f), 'utf8').includes('@internal'));
    expect(leaks).toEqual([]);
  });

  it('should declare its module format and the types of every entry point', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
    expect(pkg.type).toBe('commonjs');
    expect(pkg.license).toBe('BSD-3-Clause');
    for (const [subpath, entry] of Object.entries(pkg.exports as Record<string, string | Record<string, string>>)) {
      const targets = typeof entry === 'string' ? [entry] : Object.values(entry);
      for (const target of targets) expect([subpath, packed.includes(path.posix.normalize(target))]).toEqual([subpath, true]);
    }
    for (const [pattern, targets] of Object.entries(pkg.typesVersions['*'] as Record<string, string[]>)) {
      expect([pattern, targets.every((t) => packed.includes(t))]).toEqual([pattern, true]);
    }
    expect(fs.readFileSync(path.join(root, 'LICENSE'), 'utf8')).toMatch(/Anaconda, Inc\. and contributors/);
  });

  it('should send bundlers for browsers to the browser entry points, by export condition and by the browser field', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
    const entries: [string, string, string][] = [
      ['.', './dist/index.js', './dist/browser.js'],
      ['./testing', './dist/testing/index.js', './dist/testing/browser.js'],
    ];
    for (const [subpath, node, browser] of entries) {
      const conditions = pkg.exports[subpath] as Record<string, string>;
      // Order matters: a resolver takes the first condition it knows.
      expect([subpath, Object.keys(conditions)]).toEqual([subpath, ['types', 'browser', 'default']]);
      expect([subpath, conditions.browser, conditions.default]).toEqual([subpath, browser, node]);
      expect([node, pkg.browser[node]]).toEqual([node, browser]);
    }
    for (const target of Object.values(pkg.browser as Record<string, string>)) {
      expect([target, packed.includes(path.posix.normalize(target))]).toEqual([target, true]);
    }
  });
});

describe('the installed package', () => {
  let tmp: string;
  let installed: string;

  beforeAll(() => {
    // A project with the packed tarball extracted as node_modules/rxcomm, and the
    // dependencies (and Node's types) from this repository.
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rxcomm-package-'));
    installed = installPacked(tmp);
  }, 60_000);

  afterAll(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const consumer = `
    import { firstValueFrom, type Observable } from 'rxjs';
    import {
      Comm, CommClosedError, ConfigError, connect, daskCodec, getBackend, listen, parseAddress, status$, writeTo,
      type Backend, type CommStatus, type ConnectConfig, type Connection, type ListenConfig, type MessageCodec,
    } from 'rxcomm';
    import { acceptHandshake, createCommPair, createConnectionPair, createTestCertificates, type TestPairConfig } from 'rxcomm/testing';

    const config: ConnectConfig = { timeout: 1000 };
    const comm$: Observable<Comm> = connect('inproc://nowhere', config);
    const listenConfig: ListenConfig = {};
    const listener = listen('inproc://', (comm: Comm) => { comm.read$.subscribe(comm); }, listenConfig);
    const codec: MessageCodec = daskCodec({ deserialize: false });
    const backend: Backend = getBackend('tcp');
    const scheme: string = parseAddress('tcp://127.0.0.1:1')[0];
    const events: Observable<CommStatus> = status$;
    const errors: Error[] = [new CommClosedError('closed'), new ConfigError('bad')];
    const pairConfig: TestPairConfig = { delay: 1 };
    const [a, b]: [Comm, Comm] = createCommPair(pairConfig);
    const [c]: [Connection, Connection] = createConnectionPair();
    const accepted: Observable<Comm> = acceptHandshake(c);
    async function use(): Promise<unknown> {
      const sent: number = await a.write('hi');
      a.read$.pipe(writeTo(b)).subscribe();
      const certs = await createTestCertificates();
      return [sent, await b.read(), await firstValueFrom(listener.bound$), certs, comm$, codec, backend, scheme, events, errors, accepted];
    }
    export { use };
  `;

  // The programs share parsed (and bound) declaration files, as editors do, to keep this fast.
  const sourceFiles = new Map<string, ts.SourceFile>();
  const cachingHost = (options: ts.CompilerOptions): ts.CompilerHost => {
    const host = ts.createCompilerHost(options);
    const getSourceFile = host.getSourceFile.bind(host);
    host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) => {
      if (!fileName.endsWith('.d.ts')) return getSourceFile(fileName, languageVersion, onError, shouldCreate);
      const format = typeof languageVersion === 'object' ? languageVersion.impliedNodeFormat : undefined;
      const key = `${fileName}\0${format}`;
      let file = sourceFiles.get(key);
      if (!file) {
        file = getSourceFile(fileName, languageVersion, onError, shouldCreate);
        if (file) sourceFiles.set(key, file);
      }
      return file;
    };
    return host;
  };

  const resolutions: [string, string, ts.CompilerOptions][] = [
    ['node10', 'consumer.ts', { module: ts.ModuleKind.CommonJS, moduleResolution: ts.ModuleResolutionKind.Node10 }],
    ['node16 (CommonJS)', 'consumer.ts', { module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16 }],
    ['node16 (ESM)', 'consumer.mts', { module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16 }],
    ['bundler', 'consumer.ts', { module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler }],
  ];

  it.each(resolutions)('should type-check a strict consumer under moduleResolution %s', (_name, file, options) => {
    const consumerFile = path.join(tmp, file);
    fs.writeFileSync(consumerFile, consumer);
    const compilerOptions: ts.CompilerOptions = {
      ...options,
      target: ts.ScriptTarget.ES2022,
      lib: ['lib.es2022.d.ts'],
      strict: true,
      noEmit: true,
      types: ['node'],
      typeRoots: [path.join(tmp, 'node_modules', '@types')],
      skipLibCheck: false,
    };
    const program = ts.createProgram([consumerFile], compilerOptions, cachingHost(compilerOptions));
    // The package's own declarations are checked too (lib checking of rxjs and Node is skipped for speed).
    const checked = program
      .getSourceFiles()
      .filter((sf) => sf.fileName === consumerFile || sf.fileName.startsWith(`${installed}/`));
    const resolved = checked.map((sf) => path.relative(tmp, sf.fileName));
    expect(resolved).toEqual(
      expect.arrayContaining(['node_modules/rxcomm/dist/index.d.ts', 'node_modules/rxcomm/dist/testing/index.d.ts']),
    );
    const diagnostics = [
      ...program.getOptionsDiagnostics(),
      ...program.getGlobalDiagnostics(),
      ...checked.flatMap((sf) => [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)]),
    ];
    const messages = diagnostics.map((d) => {
      const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
      if (!d.file || d.start === undefined) return text;
      const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
      return `${path.relative(tmp, d.file.fileName)}:${line + 1}:${character + 1} ${text}`;
    });
    expect(messages).toEqual([]);
  }, 30_000);

  const node = (args: string[]) => execFileSync(process.execPath, args, { cwd: tmp, encoding: 'utf8' }).trim();

  it('should load from plain Node as CommonJS and pass a message', () => {
    const out = node([
      '-e',
      `const { connect, listen, Comm } = require('rxcomm');
       const { createCommPair } = require('rxcomm/testing');
       if (require.resolve('rxcomm') !== ${JSON.stringify(path.join(installed, 'dist', 'index.js'))}) throw new Error(require.resolve('rxcomm'));
       const [a, b] = createCommPair();
       a.write('over the pair');
       b.read().then((msg) => console.log(typeof connect, typeof listen, typeof Comm, msg));`,
    ]);
    expect(out).toBe('function function function over the pair');
  });

  it('should ship the rxcomm command as its bin, runnable with its shebang', () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(installed, 'package.json'), 'utf8')) as { bin?: Record<string, string> };
    expect(manifest.bin).toEqual({ rxcomm: 'dist/cli/main.js' });
    const bin = path.join(installed, manifest.bin!.rxcomm);
    expect(fs.readFileSync(bin, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    const out = node([bin, '--help']);
    expect(out.split('\n')[0]).toBe('Usage: rxcomm COMMAND [arguments] [options]');
    expect(out).toContain('bridge  relays every comm accepted on one address to another');
  });

  it('should load from plain Node as ESM', () => {
    const out = node([
      '--input-type=module',
      '-e',
      `import { connect, listen, Comm } from 'rxcomm';
       import { createCommPair } from 'rxcomm/testing';
       console.log(typeof connect, typeof listen, typeof Comm, typeof createCommPair);`,
    ]);
    expect(out).toBe('function function function function');
  });

  it('should map stack traces to the shipped TypeScript sources', () => {
    const out = node([
      '--enable-source-maps',
      '-e',
      `try { require('rxcomm').parseHostPort('::1'); } catch (err) { console.log(err.stack); }`,
    ]);
    // The first frame is in the shipped lib/*.ts, as the source map says.
    const frame = out.split('\n').find((line) => line.trim().startsWith('at '));
    expect(frame).toContain(`${path.join(installed, 'lib')}${path.sep}`);
    expect(frame).toMatch(/\.ts:\d+:\d+\)?$/);
  });
});
