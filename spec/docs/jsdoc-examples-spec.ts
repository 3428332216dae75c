/**
 * Every ```ts block in a `## Example` section of a JSDoc comment that documents the
 * public API (what 'rxcomm' and 'rxcomm/testing' export, and the header comments of the
 * modules that define it) type-checks.
 *
 * Conventions for JSDoc examples, unlike README blocks:
 * - They may leave out imports. Each gets a prelude that imports every name it uses but
 *   does not declare from the first of 'rxcomm', 'rxcomm/testing', 'rxjs', 'rxjs/testing'
 *   that exports it.
 * - They may use, without declaring them, `comm` (a `Comm`), `listener` (a `Listener`)
 *   and `source$` (an `Observable<unknown>`): the prelude declares those it uses
 *   (`declare const comm: Comm;` ...).
 * - Everything else they use they declare. They are ES modules (top-level await allowed)
 *   checked under `--strict` in one program with the README's settings (jest's globals
 *   included). They are type-checked, never run.
 * Examples in comments of internal modules (not exported) are not checked.
 */
import { BlockProgram, jsdocExamples, jsdocPrelude, type JsdocExample } from './code-blocks';

const program = new BlockProgram();
const { examples, moduleExports } = jsdocExamples(program);
const publicExamples = examples.filter((e) => e.isPublic);

describe('JSDoc examples of the public API', () => {
  let diagnostics: Map<string, string[]>;

  beforeAll(() => {
    diagnostics = program.check(publicExamples.map((block) => ({ block, prelude: jsdocPrelude(block.code, moduleExports) })));
  });

  it('are found', () => {
    expect(publicExamples.length).toBeGreaterThan(0);
  });

  it.each(publicExamples.map((e) => [e.where, e] as const))('%s type-checks', (where: string, _example: JsdocExample) => {
    expect(diagnostics.get(where)).toEqual([]);
  });
});
