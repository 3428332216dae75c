/**
 * Finds out-of-tree backends the way Dask finds entry points in the
 * `distributed.comm.backends` group: an installed npm package declares
 *
 *     "rxcomm": { "backends": { "udp": "./udp.js" } }
 *
 * in its package.json. We look in every `node_modules` folder Node would search from
 * the current directory and from this package, scoped packages included. Node only: the
 * Node platform hands `discoverBackend` to the registry; a browser bundle has no folders
 * to search.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkBackend, type Backend } from '../registry';

function nodeModulesFolders(): string[] {
  const folders = new Set<string>();
  for (let dir = process.cwd(); ; dir = path.dirname(dir)) {
    folders.add(path.join(dir, 'node_modules'));
    if (path.dirname(dir) === dir) break;
  }
  for (const dir of require.resolve.paths(__filename) ?? []) folders.add(dir);
  return [...folders].filter((dir) => fs.existsSync(dir));
}

function packageFolders(nodeModules: string): string[] {
  const found: string[] = [];
  for (const entry of fs.readdirSync(nodeModules, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const full = path.join(nodeModules, entry.name);
    if (entry.name.startsWith('@')) {
      for (const scoped of fs.readdirSync(full)) found.push(path.join(full, scoped));
    } else {
      found.push(full);
    }
  }
  return found;
}

/** The module file that declares a backend for `scheme`, or undefined. */
export function findBackendModule(scheme: string): string | undefined {
  for (const nodeModules of nodeModulesFolders()) {
    for (const folder of packageFolders(nodeModules)) {
      let manifest: { rxcomm?: { backends?: Record<string, unknown> } };
      try {
        manifest = JSON.parse(fs.readFileSync(path.join(folder, 'package.json'), 'utf8'));
      } catch {
        continue; // not a package, or an unreadable one: not ours to judge
      }
      const entry = manifest.rxcomm?.backends?.[scheme];
      if (typeof entry === 'string') return path.resolve(folder, entry);
    }
  }
  return undefined;
}

/**
 * Loads a backend module. Its export (or `default` export) is a backend object, or a
 * class or factory function that makes one (Dask's entry points name a class).
 */
export function loadBackendModule(file: string): unknown {
  const loaded = require(file);
  const exported = loaded && typeof loaded === 'object' && 'default' in loaded ? loaded.default : loaded;
  if (typeof exported !== 'function') return exported;
  const isClass = /^class[\s{]/.test(Function.prototype.toString.call(exported));
  return isClass ? new exported() : exported();
}

/** The installed backend declared for `scheme`, loaded and checked; undefined if none is. */
export function discoverBackend(scheme: string): Backend | undefined {
  const file = findBackendModule(scheme);
  return file === undefined ? undefined : checkBackend(scheme, loadBackendModule(file), file);
}
