/**
 * The reporter of `npm run bench`: from each client's figures per repetition to the
 * table printed per transport (medians, ratios, targets, verdicts) and the spread of
 * rxcomm/bare within each repetition. No I/O: run.ts prints and saves what this returns.
 *
 * Targets are ratios of rxcomm's figure to the baseline's, measured in the same run, so
 * they hold on any machine; absolute figures would not. The baseline ("bare") is plain
 * Node sockets for tcp and tls (sides/bare.ts) and the `ws` package for ws and wss
 * (sides/bare_ws.ts).
 */
import { median } from './sides/protocol';

export type Impl = 'rxcomm' | 'bare' | 'dask';
export type Transport = 'tcp' | 'tls' | 'ws' | 'wss';
export const TRANSPORTS: readonly Transport[] = ['tcp', 'tls', 'ws', 'wss'];
export const IMPLS: Impl[] = ['rxcomm', 'bare', 'dask'];
export const IMPL_NAMES: Record<Impl, string> = { rxcomm: 'rxcomm', bare: 'bare Node', dask: 'Dask' };

/** ws and wss: Dask's ws framing over the WebSocket protocol (the `ws` package in Node). */
export const isWs = (transport: Transport): boolean => transport === 'ws' || transport === 'wss';
/** Encrypted transports: tls, and wss (its TLS as tls://'s). */
export const isEncrypted = (transport: Transport): boolean => transport === 'tls' || transport === 'wss';

/** The column's name: the baseline is a bare socket for tcp/tls and a bare `ws` pair for ws/wss. */
export function implName(impl: Impl, transport: Transport): string {
  return impl === 'bare' && isWs(transport) ? 'bare ws' : IMPL_NAMES[impl];
}

/** One client's repetition: Dask's output keys (`roundtrip_median_us`, ...) when ok. */
export interface ClientRun {
  impl: Impl;
  rep: number;
  ok: boolean;
  seconds: number;
  result?: Record<string, unknown>;
  error?: string;
}

interface Target {
  /** Limit on rxcomm/bare and rxcomm/Dask (a maximum for latency, else a minimum). */
  bare: number;
  dask: number;
  /** rxcomm/Dask must be strictly beyond `dask` ("ahead of Dask": < for latency, > else). */
  strictDask?: boolean;
  text: string;
}

interface Metric {
  key: string;
  label: string;
  unit: 'us' | 'rate' | 'MiBps';
  lowerIsBetter?: boolean;
  target?: (transport: Transport) => Target;
}

/**
 * The one-way bulk rows' target (lower against bare when encrypted, as in the README's
 * targets: tls and wss).
 */
const bulkTarget = (t: Transport): Target => {
  const bare = isEncrypted(t) ? 0.85 : 0.9;
  return { bare, dask: 1, strictDask: true, text: `≥${bare}× bare, >Dask` };
};

/**
 * Against Dask, ws and wss only ask to be ahead (the targets: Dask's tornado
 * websocket is far slower than its tcp, so a multiple of it says little); against the
 * bare `ws` pair, the same ratios as tcp against the bare socket.
 */
export const METRICS: Metric[] = [
  {
    key: 'roundtrip_median_us',
    label: 'round trip median (µs)',
    unit: 'us',
    lowerIsBetter: true,
    target: (t) => (isWs(t) ? { bare: 1.15, dask: 1, strictDask: true, text: '≤1.15× bare, <Dask' } : { bare: 1.15, dask: 0.5, text: '≤1.15× bare, ≤0.5× Dask' }),
  },
  {
    key: 'roundtrip_per_s',
    label: 'round trips/s',
    unit: 'rate',
    target: (t) => (isWs(t) ? { bare: 1 / 1.15, dask: 1, strictDask: true, text: '≥0.87× bare, >Dask' } : { bare: 1 / 1.15, dask: 2, text: '≥0.87× bare, ≥2× Dask' }),
  },
  {
    key: 'pipelined_per_s',
    label: 'pipelined msgs/s',
    unit: 'rate',
    target: (t) =>
      isWs(t) ? { bare: 0.7, dask: 1, strictDask: true, text: '≥0.7× bare, >Dask' } : { bare: 0.7, dask: t === 'tls' ? 10 : 20, text: `≥0.7× bare, ≥${t === 'tls' ? 10 : 20}× Dask` },
  },
  { key: 'bulk_16MiB_MiBps', label: 'bulk 16 MiB (MiB/s)', unit: 'MiBps', target: bulkTarget },
  { key: 'bulk_1MiB_MiBps', label: 'bulk 1 MiB (MiB/s)', unit: 'MiBps', target: bulkTarget },
  { key: 'bulk_16MiB_acked_MiBps', label: 'bulk 16 MiB acked (MiB/s)', unit: 'MiBps' },
  { key: 'bulk_1MiB_acked_MiBps', label: 'bulk 1 MiB acked (MiB/s)', unit: 'MiBps' },
];

export interface Check {
  metric: string;
  rxcomm?: number;
  bare?: number;
  dask?: number;
  vsBare?: number;
  vsDask?: number;
  target?: string;
  passBare?: boolean;
  passDask?: boolean;
  pass?: boolean;
}

type Medians = Partial<Record<Impl, Record<string, number>>>;

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a !== undefined && b !== undefined && b > 0 ? a / b : undefined;
}

function check(metric: Metric, transport: Transport, medians: Medians): Check {
  const value = (impl: Impl) => medians[impl]?.[metric.key];
  const out: Check = {
    metric: metric.key,
    rxcomm: value('rxcomm'),
    bare: value('bare'),
    dask: value('dask'),
    vsBare: ratio(value('rxcomm'), value('bare')),
    vsDask: ratio(value('rxcomm'), value('dask')),
  };
  if (!metric.target) return out;
  const target = metric.target(transport);
  out.target = target.text;
  const meets = (r: number | undefined, limit: number, strict = false) =>
    r === undefined ? undefined : metric.lowerIsBetter ? (strict ? r < limit : r <= limit) : strict ? r > limit : r >= limit;
  out.passBare = meets(out.vsBare, target.bare);
  out.passDask = meets(out.vsDask, target.dask, target.strictDask);
  out.pass = out.passBare !== false && out.passDask !== false && out.passBare !== undefined;
  return out;
}

function verdict(c: Check): string {
  if (c.target === undefined) return '(no target)';
  if (c.passBare === undefined) return 'n/a';
  const failed = [c.passBare === false ? 'bare' : '', c.passDask === false ? 'Dask' : ''].filter(Boolean);
  const daskNote = c.passDask === undefined ? ' (Dask n/a)' : '';
  return failed.length === 0 ? `pass${daskNote}` : `FAIL (${failed.join(', ')})${daskNote}`;
}

function format(value: number | undefined, unit: Metric['unit']): string {
  if (value === undefined || !Number.isFinite(value)) return 'n/a';
  return unit === 'us' ? value.toFixed(1) : Math.round(value).toLocaleString('en-US');
}

/** A markdown table, so that it can be pasted into README files as it is. */
function renderTable(transport: Transport, checks: Check[], reps: Record<Impl, number>): string {
  const header = ['metric', 'rxcomm', implName('bare', transport), 'Dask', 'rxcomm/bare', 'rxcomm/Dask', 'target', 'result'];
  // Two significant digits below 0.1 (Dask's ws round trips are ~500× rxcomm's).
  const r = (x: number | undefined) => (x === undefined ? 'n/a' : `${x >= 100 ? x.toFixed(0) : x >= 0.1 ? x.toFixed(2) : x.toPrecision(2)}×`);
  const rows = checks.map((c) => {
    const metric = METRICS.find((m) => m.key === c.metric)!;
    return [metric.label, format(c.rxcomm, metric.unit), format(c.bare, metric.unit), format(c.dask, metric.unit), r(c.vsBare), r(c.vsDask), c.target ?? '', verdict(c)];
  });
  const left = (i: number) => i === 0 || i >= 6;
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => '| ' + cells.map((cell, i) => (left(i) ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join(' | ') + ' |';
  const rule = '|' + widths.map((w, i) => (left(i) ? ':' + '-'.repeat(w + 1) : '-'.repeat(w + 1) + ':')).join('|') + '|';
  const title = `${transport}: medians of ${reps.rxcomm}/${reps.bare}/${reps.dask} interleaved reps (rxcomm/bare/Dask); latency ratios < 1 and other ratios > 1 favour rxcomm`;
  return [title, line(header), rule, ...rows.map(line)].join('\n');
}

export interface TransportReport {
  table: string;
  medians: Medians;
  checks: Check[];
  /** rxcomm/bare per repetition and metric: the spread says how far noise moves a ratio. */
  pairedRxcommOverBare: Record<string, number[]>;
}

/** The table of one transport from all its client runs (failed ones are left out of the medians). */
export function reportTransport(transport: Transport, runs: ClientRun[], reps: number): TransportReport {
  const medians: Medians = {};
  const counts = { rxcomm: 0, bare: 0, dask: 0 };
  for (const impl of IMPLS) {
    const ok = runs.filter((run) => run.impl === impl && run.ok);
    counts[impl] = ok.length;
    if (ok.length > 0) medians[impl] = Object.fromEntries(METRICS.map((m) => [m.key, median(ok.map((run) => run.result![m.key] as number))]));
  }
  const checks = METRICS.map((metric) => check(metric, transport, medians));
  // The rxcomm and bare figures of one rep were measured seconds apart.
  const paired: Record<string, number[]> = {};
  for (let rep = 0; rep < reps; rep++) {
    const of = (impl: Impl) => runs.find((run) => run.impl === impl && run.rep === rep && run.ok)?.result;
    const [rx, bare] = [of('rxcomm'), of('bare')];
    if (!rx || !bare) continue;
    for (const { key } of METRICS) {
      const value = ratio(rx[key] as number, bare[key] as number);
      if (value !== undefined) (paired[key] ??= []).push(Math.round(value * 100) / 100);
    }
  }
  let table = renderTable(transport, checks, counts);
  if (Object.keys(paired).length > 0 && reps > 1) {
    const spread = (key: string) => {
      const values = paired[key] ?? [];
      return values.length ? `${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)}` : 'n/a';
    };
    table +=
      `\nrxcomm/bare within each rep (min–max): round trip ${spread('roundtrip_median_us')}, ` +
      `round trips/s ${spread('roundtrip_per_s')}, pipelined ${spread('pipelined_per_s')}, ` +
      `16 MiB ${spread('bulk_16MiB_MiBps')}, 1 MiB ${spread('bulk_1MiB_MiBps')}`;
  }
  return { table, medians, checks, pairedRxcommOverBare: paired };
}
