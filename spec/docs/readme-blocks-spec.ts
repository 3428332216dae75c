/**
 * Every ```ts block of README.md type-checks, and every ```ts run block runs.
 *
 * Conventions for README blocks:
 * - Each block is self-contained: it imports what it uses (from 'rxcomm', 'rxcomm/testing',
 *   'rxjs', 'rxjs/testing' or Node built-ins) and may use top-level await.
 * - All ```ts blocks are type-checked together in one program, under `--strict`, as ES
 *   modules, with 'rxcomm' mapped to lib/. Jest's globals are declared, so a block written
 *   as a jest spec (`it(...)`) checks too; such blocks are only type-checked.
 * - A block whose fence says ```ts run (GitHub still renders it as ts) is also run: it
 *   is transpiled on its own, its 'rxcomm' imports point to the build (dist/; `npm test`
 *   builds first), and it runs in a child `node` for at most 30 s. It must exit by itself
 *   with status 0 and print nothing to stderr (no unhandled error, no rxcomm warning), so
 *   it closes everything it opens (listeners, comms). Mark every block that can run on
 *   loopback without outside services; one that needs a Dask scheduler stays ```ts.
 * - Other fences (sh, text, none) are ignored.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BlockProgram, checkBuild, isJestStyle, markdownBlocks, runBlock, runProblem } from './code-blocks';

const RUN_TIMEOUT_MS = 30_000;

const blocks = markdownBlocks('README.md');
const tsBlocks = blocks.filter((b) => b.lang === 'ts');
const runBlocks = tsBlocks.filter((b) => b.info.split(/\s+/).includes('run'));

describe('README.md code blocks', () => {
  it('has ts blocks, fenced as ```ts or ```ts run', () => {
    expect(tsBlocks.length).toBeGreaterThan(0);
    const unknown = tsBlocks.filter((b) => !/^ts( run)?$/.test(b.info)).map((b) => `${b.where}: \`\`\`${b.info}`);
    expect(unknown).toEqual([]);
    const otherTypeScript = blocks.filter((b) => ['typescript', 'tsx', 'js', 'javascript'].includes(b.lang));
    expect(otherTypeScript.map((b) => `${b.where}: \`\`\`${b.info} (use ts, so that it is checked)`)).toEqual([]);
  });

  it('runs no jest-style block (those are type-checked only)', () => {
    expect(runBlocks.filter((b) => isJestStyle(b.code)).map((b) => b.where)).toEqual([]);
  });

  describe('type-check', () => {
    let diagnostics: Map<string, string[]>;

    beforeAll(() => {
      diagnostics = new BlockProgram().check(tsBlocks.map((block) => ({ block, prelude: [] })));
    });

    it.each(tsBlocks.map((b) => [b.where, b] as const))('%s type-checks', (where) => {
      expect(diagnostics.get(where)).toEqual([]);
    });
  });

  (runBlocks.length > 0 ? describe : describe.skip)('run', () => {
    let dir: string;

    beforeAll(() => {
      checkBuild();
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rxcomm-readme-'));
    });

    afterAll(() => {
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it.each(runBlocks.map((b) => [b.where, b] as const))(
      '%s runs and exits by itself',
      async (_where, block) => {
        const problem = runProblem(block, await runBlock(block, dir, RUN_TIMEOUT_MS), RUN_TIMEOUT_MS);
        if (problem) throw new Error(problem);
      },
      RUN_TIMEOUT_MS + 10_000,
    );
  });
});
