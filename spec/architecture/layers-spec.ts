/**
 * Holds every import in lib/ to the layer table in layers.ts (and the README's layout
 * section): data flows one way, transports are reached only through the registry, and
 * Node built-ins stay where a browser build can leave them out: nothing the browser entry
 * points reach imports one.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BROWSER_ENTRIES, browserViolations, importsOf, LAYERS, layerOf, libFiles, violations } from './layers';

const lib = path.join(__dirname, '../../lib');
const files = libFiles(lib);
const imports = files.flatMap((file) => importsOf(file, fs.readFileSync(path.join(lib, file), 'utf8')));

describe('layers of lib/', () => {
  it('should place every file of lib/ in exactly one layer', () => {
    const unplaced = files.filter((file) => layerOf(file) === undefined);
    expect(unplaced).toEqual([]);
  });

  it('should hold every import to the table', () => {
    expect(violations(imports)).toEqual([]);
  });

  it('should find the imports it checks (the checker is not looking at nothing)', () => {
    expect(imports.length).toBeGreaterThan(100);
    expect(imports).toContainEqual({ from: 'options/config.ts', specifier: '../protocol/codec', typeOnly: true });
    expect(imports).toContainEqual({ from: 'platform/node.ts', specifier: '../transports/tcp', typeOnly: false });
  });

  it.each([
    ['a transport importing the handshake', 'transports/tls/index.ts', "import { refuse } from '../../comm/handshake';", /transports\/tls may not import comm\/handshake/],
    ['tcp importing tls', 'transports/tcp/index.ts', "import { tlsBackend } from '../tls';", /may not import transports\/tls/],
    ['listen importing connect', 'listen/listener.ts', "import { connect } from '../connect/connect';", /listen may not import connect\/connect/],
    ['connect importing a transport', 'connect/connect.ts', "import { tcpBackend } from '../transports/tcp';", /connect may not import transports\/tcp/],
    ['options importing a codec value', 'options/resolve.ts', "import { daskCodec } from '../protocol';", /options may not import protocol$/],
    ['comm importing Node', 'comm/comm.ts', "import * as net from 'node:net';", /comm may not import node/],
    ['the registry requiring a transport', 'registry/index.ts', "const t = require('../transports/tcp');", /registry may not import transports\/tcp/],
    ['addresses importing the registry', 'addresses.ts', "import { getBackend } from './registry';", /addresses may not import registry/],
    ['the browser platform importing Node', 'platform/browser.ts', "import * as os from 'node:os';", /platform\/browser may not import node/],
    ['the browser platform naming tcp', 'platform/browser.ts', "const t = () => require('../transports/tcp');", /platform\/browser may not import transports\/tcp/],
    ['the registry importing Node', 'registry/index.ts', "import * as fs from 'node:fs';", /registry may not import node/],
    ['inproc importing Node', 'transports/inproc/index.ts', "import * as os from 'node:os';", /transports\/inproc may not import node/],
    ['the neutral API importing Node', 'api.ts', "import { debuglog } from 'node:util';", /entry may not import node/],
  ])('should fail on %s', (_what, file, line, expected) => {
    const found = violations([...imports, ...importsOf(file, line)]);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(expected);
  });

  it('should allow a type-only import where the table marks one, and no value import there', () => {
    const typeImport = importsOf('transports/tcp/index.ts', "import type { Comm } from '../../comm/connection';");
    expect(violations(typeImport)).toEqual([]);
    const valueImport = importsOf('registry/index.ts', "import { Comm } from '../comm/connection';");
    expect(violations(valueImport)).toEqual([expect.stringMatching(/registry may not import comm\/connection/)]);
  });

  it('should name every layer of the table in the README layout section', () => {
    const readme = fs.readFileSync(path.join(__dirname, '../../README.md'), 'utf8');
    const layout = readme.slice(readme.indexOf('## Layout'));
    for (const layer of LAYERS) expect(layout).toContain(`| ${layer.name} |`);
  });
});

describe('the browser build', () => {
  const sourceOf = (file: string) => (files.includes(file) ? fs.readFileSync(path.join(lib, file), 'utf8') : undefined);

  it('should reach no Node built-in, nor ws, from the browser entry points', () => {
    expect(browserViolations(BROWSER_ENTRIES, sourceOf)).toEqual([]);
  });

  it('should walk the whole graph from the entry points (the walk is not looking at nothing)', () => {
    const reached: string[] = [];
    browserViolations(BROWSER_ENTRIES, (file) => {
      reached.push(file);
      return sourceOf(file);
    });
    expect(reached).toEqual(expect.arrayContaining(['browser.ts', 'api.ts', 'platform/browser.ts', 'transports/inproc/index.ts', 'testing/pairs.ts']));
    expect(reached).not.toContain('platform/node.ts');
    expect(reached).not.toContain('testing/certificates.ts');
  });

  it.each([
    ['a static import', "import * as os from 'node:os';", 'node:os'],
    ['a lazy require', "const tcp = () => require('../transports/tcp');", 'node:net'],
    ['a dynamic import', "const load = () => import('../transports/tcp');", 'node:net'],
    ['an export from', "export * from '../transports/tcp';", 'node:net'],
    ['the ws package', "import WebSocket from 'ws';", 'ws'],
  ])('should fail on %s reached from browser.ts', (_what, line, reached) => {
    const fake: Record<string, string> = {
      'browser.ts': "import './platform/browser';\nexport * from './api';",
      'api.ts': "export { connect } from './connect/connect';",
      'connect/connect.ts': 'export const connect = 1;',
      'platform/browser.ts': line,
      'transports/tcp/index.ts': "import * as net from 'node:net';",
    };
    expect(browserViolations(['browser.ts'], (file) => fake[file])).toEqual([
      expect.stringMatching(new RegExp(`^browser\\.ts → platform/browser\\.ts → .*${reached}$`)),
    ]);
  });

  it('should not follow a type-only import (it leaves no code)', () => {
    const fake: Record<string, string> = {
      'browser.ts': "import type { Socket } from 'node:net';\nimport type { tcpBackend } from './transports/tcp';",
      'transports/tcp/index.ts': "import * as net from 'node:net';",
    };
    expect(browserViolations(['browser.ts'], (file) => fake[file])).toEqual([]);
  });
});
