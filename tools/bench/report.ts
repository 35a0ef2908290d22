import type { LatencySummary } from './stats';

/** One line of the table: a Herald figure beside the baseline it is compared with. */
export interface BenchRow {
  scenario: string;
  concurrency: number | string;
  /** Completed operations per second as the producer saw them (pairs, or accepted publishes). */
  heraldPerSec: number;
  /** Delivered per second, end to end: counted until the last delivery of the window arrived. */
  deliveredPerSec: number | null;
  errors: number;
  undelivered: number | null;
  /** Confirm (or accepted publish) → delivered, ms. */
  latency: LatencySummary;
  /** Producer-side request latency (a prepare + confirm pair, or one publish), ms. */
  requestLatency: LatencySummary;
  /** The prepare (or direct publish) and the confirm alone, ms. */
  prepareLatency?: LatencySummary;
  confirmLatency?: LatencySummary;
  baseline: string | null;
  baselinePerSec: number | null;
  baselineLatency: LatencySummary | null;
  ratio: number | null;
  rssMaxMiB: number;
  /** Herald's CPU time (user + system) per completed operation, window and drain included. */
  heraldCpuMsPerOp: number | null;
  /** The local MySQL server's CPU per completed operation over the same span (server-wide; null when it runs elsewhere). */
  databaseCpuMsPerOp?: number | null;
  errorSamples?: string[];
  /** The naive peer's window at the same concurrency, same run (pc and direct only). */
  naive?: NaivePeerFigures;
  /** With --count: server-wide MySQL statements and Redis commands per operation (window and drain). */
  counters?: PerOpCounters;
}

/** MariaDB `Com_*` and `Questions`, and Redis `commandstats` calls, per operation. */
export interface PerOpCounters {
  mysql: Record<string, number>;
  redis: Record<string, number>;
  redisCommands: number;
}

/** The naive peer's figures for one row, measured exactly as Herald's. */
export interface NaivePeerFigures {
  perSec: number;
  deliveredPerSec: number;
  errors: number;
  undelivered: number;
  latency: LatencySummary;
  requestLatency: LatencySummary;
  prepareLatency: LatencySummary;
  confirmLatency: LatencySummary;
  /** The naive process's CPU (user + system) per completed operation, window and drain included. */
  cpuMsPerOp: number | null;
  /** The local MySQL server's CPU per operation of the naive peer's window (server-wide). */
  databaseCpuMsPerOp?: number | null;
  /** Herald's sustained rate ÷ the naive peer's (each min(accepted, delivered) per second). */
  ratio: number | null;
  /** Herald's CPU per operation ÷ the naive peer's. */
  cpuRatio: number | null;
  errorSamples?: string[];
  counters?: PerOpCounters;
}

const fmt = (v: number | null | undefined, digits = 0) => (v === null || v === undefined || Number.isNaN(v) ? '–' : v.toFixed(digits));
const lat = (l: LatencySummary | null) => (l && l.count ? `${fmt(l.p50, 1)} / ${fmt(l.p95, 1)} / ${fmt(l.p99, 1)}` : '–');

/** The table as Markdown, so the same text goes to the terminal and into docs/performance.md. */
export function markdownTable(rows: readonly BenchRow[]): string {
  const header = [
    'scenario',
    'conc.',
    'Herald /s',
    'delivered /s',
    'errors',
    'undelivered',
    'confirm→delivered p50 / p95 / p99 ms',
    'baseline',
    'baseline /s',
    'ratio',
    'Herald CPU ms/op',
    'RSS MiB',
  ];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const r of rows) {
    lines.push(
      `| ${[
        r.scenario,
        String(r.concurrency),
        fmt(r.heraldPerSec),
        fmt(r.deliveredPerSec),
        String(r.errors),
        r.undelivered === null ? '–' : String(r.undelivered),
        lat(r.latency),
        r.baseline ?? '–',
        fmt(r.baselinePerSec),
        r.ratio === null ? '–' : `${r.ratio.toFixed(2)}×`,
        fmt(r.heraldCpuMsPerOp, 2),
        fmt(r.rssMaxMiB),
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

const p50 = (l: LatencySummary | null | undefined) => fmt(l?.count ? l.p50 : null, 2);
const times = (v: number | null | undefined) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : `${v.toFixed(2)}×`);

/**
 * Herald beside the naive peer: rates sustained end to end (min of accepted and delivered per
 * second), CPU per operation of each process, request p50s, and the raw limit of the machine.
 */
export function naiveTable(rows: readonly BenchRow[]): string {
  const header = [
    'scenario',
    'conc.',
    'Herald /s',
    'naive /s',
    'Herald ÷ naive',
    'Herald CPU ms/op',
    'naive CPU ms/op',
    'CPU Herald ÷ naive',
    'prepare p50 ms Herald / naive',
    'confirm p50 ms Herald / naive',
    'undelivered Herald / naive',
    'raw limit /s',
  ];
  const database = rows.some((r) => r.databaseCpuMsPerOp != null);
  if (database) header.push('MySQL server CPU ms/op Herald / naive');
  const counted = rows.some((r) => r.counters);
  if (counted) header.push('MySQL statements/op Herald / naive', 'Redis commands/op Herald / naive');
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const r of rows) {
    const n = r.naive;
    if (!n) continue;
    const direct = !r.confirmLatency?.count;
    lines.push(
      `| ${[
        r.scenario,
        String(r.concurrency),
        fmt(Math.min(r.heraldPerSec, r.deliveredPerSec ?? r.heraldPerSec)),
        fmt(Math.min(n.perSec, n.deliveredPerSec)),
        times(n.ratio),
        fmt(r.heraldCpuMsPerOp, 2),
        fmt(n.cpuMsPerOp, 2),
        times(n.cpuRatio),
        `${p50(r.prepareLatency)} / ${p50(n.prepareLatency)}`,
        direct ? '–' : `${p50(r.confirmLatency)} / ${p50(n.confirmLatency)}`,
        `${r.undelivered ?? '–'} / ${n.undelivered}`,
        fmt(r.baselinePerSec),
        ...(database ? [`${fmt(r.databaseCpuMsPerOp, 2)} / ${fmt(n.databaseCpuMsPerOp, 2)}`] : []),
        ...(counted
          ? [`${fmt(r.counters?.mysql.Questions, 2)} / ${fmt(n.counters?.mysql.Questions, 2)}`, `${fmt(r.counters?.redisCommands, 2)} / ${fmt(n.counters?.redisCommands, 2)}`]
          : []),
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A grouped bar chart of Herald against its baseline per row, as a standalone SVG. */
export function svgChart(rows: readonly BenchRow[], title: string): string {
  const bars = rows.filter((r) => r.baselinePerSec !== null);
  // What Herald sustained end to end, the figure its ratio is taken on.
  const sustained = (r: BenchRow) => Math.min(r.heraldPerSec, r.deliveredPerSec ?? r.heraldPerSec);
  const max = Math.max(1, ...bars.flatMap((r) => [sustained(r), r.baselinePerSec ?? 0]));
  const left = 260;
  const width = 900;
  const barH = 14;
  const groupH = 2 * barH + 14;
  const top = 50;
  const height = top + bars.length * groupH + 40;
  const scale = (v: number) => ((width - left - 240) * v) / max;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">${escape(title)}</text>`,
    `<rect x="${left}" y="30" width="12" height="10" fill="#2b6cb0"/><text x="${left + 16}" y="39">Herald, delivered end to end</text>`,
    `<rect x="${left + 200}" y="30" width="12" height="10" fill="#a0aec0"/><text x="${left + 216}" y="39">raw baseline (same run)</text>`,
  ];
  bars.forEach((r, i) => {
    const y = top + i * groupH;
    parts.push(`<text x="${left - 8}" y="${y + barH + 4}" text-anchor="end">${escape(`${r.scenario} @${r.concurrency}`)}</text>`);
    const h = sustained(r);
    parts.push(`<rect x="${left}" y="${y}" width="${scale(h).toFixed(1)}" height="${barH}" fill="#2b6cb0"/>`);
    parts.push(`<text x="${left + scale(h) + 4}" y="${y + barH - 3}">${h.toFixed(0)}/s${r.ratio === null ? '' : ` (${r.ratio.toFixed(2)}×)`}</text>`);
    const b = r.baselinePerSec ?? 0;
    parts.push(`<rect x="${left}" y="${y + barH}" width="${scale(b).toFixed(1)}" height="${barH}" fill="#a0aec0"/>`);
    parts.push(`<text x="${left + scale(b) + 4}" y="${y + 2 * barH - 3}" fill="#4a5568">${b.toFixed(0)}/s ${escape(r.baseline ?? '')}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
