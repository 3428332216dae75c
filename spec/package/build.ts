/**
 * The package specs test dist/, what `npm pack` ships. `npm test` builds it first (pretest);
 * run alone (`npx jest spec/package`), these specs build it when it is missing or older than
 * lib/ or the build config, one worker at a time. `installPacked` puts the packed tarball
 * into a project as a user's `npm install` would (spec/package, spec/platform).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const root = path.resolve(__dirname, '..', '..');

function newestMtime(file: string): number {
  const stat = fs.statSync(file);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = 0;
  for (const entry of fs.readdirSync(file)) newest = Math.max(newest, newestMtime(path.join(file, entry)));
  return newest;
}

function listFiles(dir: string, base = dir): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name);
    return entry.isDirectory() ? listFiles(file, base) : [path.relative(base, file).split(path.sep).join('/')];
  });
}

/** Built files of dist/ whose source in lib/ is gone (tsc never deletes outputs). */
export function staleOutputs(): string[] {
  const sources = new Set(listFiles(path.join(root, 'lib')).filter((f) => f.endsWith('.ts')));
  return listFiles(path.join(root, 'dist'))
    .filter((f) => !sources.has(f.replace(/(\.d\.ts|\.js)(\.map)?$/, '.ts')))
    .map((f) => `dist/${f}`);
}

function isBuilt(): boolean {
  const marker = path.join(root, 'dist', 'index.js');
  if (!fs.existsSync(marker) || !fs.existsSync(path.join(root, 'dist', 'testing', 'index.d.ts'))) return false;
  const inputs = ['lib', 'tsconfig.build.json', 'tsconfig.json'].map((f) => newestMtime(path.join(root, f)));
  return fs.statSync(marker).mtimeMs >= Math.max(...inputs) && staleOutputs().length === 0;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Makes sure dist/ is a build of the current lib/, building it if needed. */
export async function ensureBuilt(): Promise<void> {
  if (isBuilt()) return;
  const lock = path.join(os.tmpdir(), `rxcomm-build-lock-${createHash('sha1').update(root).digest('hex').slice(0, 12)}`);
  for (const start = Date.now(); ; ) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // A lock older than any build could take was left by a killed run.
      if (Date.now() - fs.statSync(lock).mtimeMs > 120_000) fs.rmSync(lock, { recursive: true, force: true });
      if (Date.now() - start > 120_000) throw new Error(`${lock} is held: remove it, or run \`npm run build\``);
      await sleep(200);
    }
  }
  try {
    if (isBuilt()) return; // another worker built it while this one waited
    try {
      // As `npm run build`: from an empty dist/, so that it holds no outputs of deleted sources.
      fs.rmSync(path.join(root, 'dist'), { recursive: true, force: true });
      execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
        cwd: root,
        encoding: 'utf8',
        stdio: 'pipe',
      });
    } catch (err) {
      const { stdout = '', stderr = '' } = err as { stdout?: string; stderr?: string };
      throw new Error(`\`npm run build\` failed, so the package cannot be checked:\n${stdout}${stderr}`);
    }
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

export interface PackResult {
  filename: string;
  files: { path: string }[];
}

/** `npm pack --json` of the repository (with `--dry-run`, the file list alone). */
export function npmPack(...args: string[]): PackResult {
  const out = execFileSync('npm', ['pack', '--json', '--ignore-scripts', ...args], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return (JSON.parse(out) as PackResult[])[0];
}

/** What `npm install rxcomm` brings along: the package's dependencies, and Node's types for consumers. */
function installedAlongside(): string[] {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  return [...Object.keys(pkg.dependencies ?? {}), '@types/node'];
}

/**
 * Packs the package into `project` and extracts it as `node_modules/rxcomm`, with its
 * dependencies (and Node's types) linked from this repository; returns where it is.
 * Call `ensureBuilt()` first.
 */
export function installPacked(project: string, dependencies = installedAlongside()): string {
  const { filename } = npmPack('--pack-destination', project);
  const installed = path.join(project, 'node_modules', 'rxcomm');
  fs.mkdirSync(installed, { recursive: true });
  execFileSync('tar', ['-xzf', path.join(project, filename), '-C', installed, '--strip-components=1']);
  for (const dep of dependencies) {
    const link = path.join(project, 'node_modules', dep);
    fs.mkdirSync(path.dirname(link), { recursive: true });
    fs.symlinkSync(path.join(root, 'node_modules', dep), link, 'dir');
  }
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
  return installed;
}
