/**
 * What a spec needs to see of the process itself: its warnings, and its open handles.
 */
import { EventEmitter } from 'node:events';

/**
 * The real `process`. Jest gives each spec file a copy of it, on which no 'warning' event
 * ever fires: Node's internals (a MaxListenersExceededWarning, say) emit on the real one.
 * A function made by a Node built-in's `Function` runs in Node's own realm, where
 * `process` is the real one.
 */
export const hostProcess = (EventEmitter.constructor as FunctionConstructor)('return process')() as NodeJS.Process;

/** Collects every process warning until `stop()`. */
export function watchWarnings(): { warnings: Error[]; stop(): void } {
  const warnings: Error[] = [];
  const onWarning = (warning: Error) => warnings.push(warning);
  hostProcess.on('warning', onWarning);
  return { warnings, stop: () => hostProcess.off('warning', onWarning) };
}

/**
 * Warnings as `name: message` lines, less the counts that other spec files' rxcomm prints
 * when its 10 s window closes: each spec file loads rxcomm afresh, and in one process
 * (`jest --runInBand`) their timers may fire during a later file.
 */
export function warningLines(warnings: Error[]): string[] {
  return warnings
    .filter((warning) => !((warning as { code?: string }).code === 'RXCOMM_STATUS' && / more in the last \d+ s$/.test(warning.message)))
    .map((warning) => `${warning.name}: ${warning.message}`);
}

/** How many of each kind of resource keeps the event loop alive (sockets, servers, ref'd timers). */
export function activeResources(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return counts;
}

/**
 * Waits until no kind of resource is above `baseline` (sockets close and timers settle a
 * few ticks after the last comm ends), for at most `within` ms, and returns what is still
 * above it: `{}` when everything opened since the baseline was closed.
 */
export async function resourcesAbove(baseline: Map<string, number>, within = 10_000): Promise<Record<string, number>> {
  const excess = (): Record<string, number> => {
    const above: Record<string, number> = {};
    for (const [kind, count] of activeResources()) {
      if (count > (baseline.get(kind) ?? 0)) above[kind] = count - (baseline.get(kind) ?? 0);
    }
    return above;
  };
  const deadline = Date.now() + within;
  while (Object.keys(excess()).length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return excess();
}
