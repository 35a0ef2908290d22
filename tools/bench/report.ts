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
  baseline: string | null;
  baselinePerSec: number | null;
  baselineLatency: LatencySummary | null;
  ratio: number | null;
  rssMaxMiB: number;
  /** Herald's CPU time (user + system) per completed operation, window and drain included. */
  heraldCpuMsPerOp: number | null;
  errorSamples?: string[];
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
