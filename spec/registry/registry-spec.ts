import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { firstValueFrom } from 'rxjs';
import { ConfigError, connect, getBackend, listen, registerBackend, UnknownSchemeError } from 'rxcomm';

describe('backend registry', () => {
  it('should load the built-in backends by scheme', () => {
    for (const scheme of ['inproc', 'tcp']) {
      const backend = getBackend(scheme);
      expect(typeof backend.connect).toBe('function');
      expect(getBackend(scheme)).toBe(backend);
    }
  });

  it('should fail on an unknown scheme with Dask message', () => {
    expect(() => getBackend('nope')).toThrow(UnknownSchemeError);
    expect(() => getBackend('nope')).toThrow(/^unknown address scheme 'nope' \(known schemes: \[.*'inproc'.*'tcp'.*\]\)$/);
  });

  it('should register a backend that serves a new scheme', async () => {
    registerBackend('alias', getBackend('inproc'));
    expect(getBackend('alias')).toBe(getBackend('inproc'));
    expect(() => getBackend('nope')).toThrow(/'alias'/);
  });

  it('should refuse an object that is not a backend', () => {
    expect(() => registerBackend('broken', { connect: () => undefined } as never)).toThrow(ConfigError);
    expect(() => registerBackend('bad scheme!', getBackend('inproc'))).toThrow(ConfigError);
  });

  it('should serve connect and listen through a registered backend', async () => {
    registerBackend('mine', getBackend('inproc'));
    const listener = listen('inproc://');
    const sub = listener.subscribe((comm) => comm.read$.subscribe(comm));
    const { contactAddress } = await firstValueFrom(listener.bound$);
    const comm = await firstValueFrom(connect(contactAddress.replace('inproc://', 'mine://')));
    await comm.write('via mine');
    expect(await comm.read()).toBe('via mine');
    await comm.close();
    sub.unsubscribe();
  });

  it("should call a wrapping backend's own connect, even when it copies tcp's other members", async () => {
    // tcp connects by callbacks inside connect(); a backend that replaces `connect` must
    // still be the one asked, whatever it copied from tcp.
    const tcp = getBackend('tcp');
    const dialled: string[] = [];
    registerBackend('traced', {
      ...tcp,
      connect: (location, options) => {
        dialled.push(location);
        return tcp.connect(location, options);
      },
    });
    registerBackend('tcp-alias', tcp);
    const listener = listen('tcp://127.0.0.1:0');
    const sub = listener.subscribe((comm) => comm.read$.subscribe(comm));
    const { contactAddress } = await firstValueFrom(listener.bound$);
    for (const scheme of ['traced', 'tcp-alias']) {
      const comm = await firstValueFrom(connect(contactAddress.replace('tcp://', `${scheme}://`)));
      await comm.write(`via ${scheme}`);
      expect(await comm.read()).toBe(`via ${scheme}`);
      await comm.close();
    }
    expect(dialled).toEqual([contactAddress.replace('tcp://', '')]);
    sub.unsubscribe();
  });
});

describe('backend discovery from installed packages', () => {
  const root = path.resolve(__dirname, '..', '..');
  let project: string;

  beforeAll(() => {
    // A project with rxcomm (this build) and a package declaring a 'udp' backend.
    project = fs.mkdtempSync(path.join(os.tmpdir(), 'rxcomm-discovery-'));
    const modules = path.join(project, 'node_modules');
    fs.mkdirSync(path.join(modules, '@acme', 'rxcomm-udp'), { recursive: true });
    fs.symlinkSync(root, path.join(modules, 'rxcomm'), 'dir');
    fs.symlinkSync(path.join(root, 'node_modules', 'rxjs'), path.join(modules, 'rxjs'), 'dir');
    fs.writeFileSync(
      path.join(modules, '@acme', 'rxcomm-udp', 'package.json'),
      JSON.stringify({ name: '@acme/rxcomm-udp', version: '1.0.0', rxcomm: { backends: { udp: './udp.js' } } }),
    );
    // The fixture backend forwards to inproc, as a real one would implement its own transport.
    fs.writeFileSync(
      path.join(modules, '@acme', 'rxcomm-udp', 'udp.js'),
      `const { getBackend } = require('rxcomm');
       module.exports = class UdpBackend {
         constructor() { Object.assign(this, getBackend('inproc')); this.loadedFrom = __filename; }
       };`,
    );
  });

  afterAll(() => fs.rmSync(project, { recursive: true, force: true }));

  it('should load a declared backend on first use, in a fresh process', () => {
    const script = `
      const { getBackend, listen, connect } = require('rxcomm');
      const { firstValueFrom } = require('rxjs');
      (async () => {
        const udp = getBackend('udp');
        const listener = listen('inproc://');
        const sub = listener.subscribe((comm) => comm.read$.subscribe(comm));
        const { contactAddress } = await firstValueFrom(listener.bound$);
        const comm = await firstValueFrom(connect(contactAddress.replace('inproc', 'udp')));
        await comm.write('over udp');
        const reply = await comm.read();
        await comm.close();
        sub.unsubscribe();
        console.log(JSON.stringify({ loadedFrom: udp.loadedFrom, reply, same: getBackend('udp') === udp }));
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const out = execFileSync(process.execPath, ['-e', script], {
      cwd: project,
      env: { ...process.env, NODE_PATH: path.join(project, 'node_modules') },
      encoding: 'utf8',
    });
    const result = JSON.parse(out.trim().split('\n').pop()!);
    expect(result.loadedFrom).toBe(path.join(project, 'node_modules', '@acme', 'rxcomm-udp', 'udp.js'));
    expect(result.reply).toBe('over udp');
    expect(result.same).toBe(true);
  });

  it('should import the package from plain Node as CommonJS and as ESM', () => {
    const esm = execFileSync(
      process.execPath,
      ['--input-type=module', '-e', "import { connect, listen, Comm } from 'rxcomm'; import { createCommPair } from 'rxcomm/testing'; console.log(typeof connect, typeof listen, typeof Comm, typeof createCommPair);"],
      { cwd: project, encoding: 'utf8' },
    );
    expect(esm.trim()).toBe('function function function function');
  });
});
