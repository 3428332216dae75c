#!/usr/bin/env node
/**
 * The `rxcomm` command (`npx rxcomm …`): poke Dask and rxcomm servers from a shell. Built
 * on the package's public API only (spec/architecture holds it to that), so it shows what
 * a user's program can do.
 */
import { run } from './run';

void run(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  // Everything the command opened is closed by now; should anything still hold the event
  // loop (a peer that never finishes closing), a script must not hang on it.
  setTimeout(() => process.exit(code), 2000).unref();
});
