import { readText } from './workspace';

export const DASHBOARD = 'deploy/grafana/herald-dashboard.json';

interface Panel {
  type: string;
  title?: string;
  targets?: Array<{ expr?: string }>;
  panels?: Panel[];
}
export interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating?: { list: Array<{ name: string; query?: string | { query?: string } }> };
}

export const loadDashboard = (): Dashboard => JSON.parse(readText(DASHBOARD)) as Dashboard;

/** Every panel, rows' children included. */
export function allPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** Every PromQL expression in the dashboard: panel targets and variable queries. */
export function expressions(d: Dashboard): string[] {
  const fromPanels = allPanels(d).flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ''));
  const fromVariables = (d.templating?.list ?? []).map((v) => (typeof v.query === 'string' ? '' : (v.query?.query ?? '')));
  return [...fromPanels, ...fromVariables].filter((e) => e.trim());
}

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

/**
 * The metric names one PromQL expression selects. Small on purpose: it drops strings, label
 * matchers, ranges, grouping clauses and numbers, then every identifier not called as a
 * function is a metric. `label_values(metric, label)` counts its first argument only.
 */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)[^)]*\)/g, ' $1 ')
    .replace(/"(?:[^"\\]|\\.)*"/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\w+/g, ' ')
    .replace(/(?<![\w:])\d+(\.\d+)?(e[+-]?\d+)?/gi, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const [, name, call] = m;
    if (!call && name && !KEYWORDS.has(name.toLowerCase())) names.add(name);
  }
  return [...names];
}

/** The series names a Prometheus text exposition offers: histograms add _bucket, _sum, _count. */
export function exposedNames(metricsText: string): Set<string> {
  const names = new Set<string>();
  for (const m of metricsText.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name = '', type] = m;
    names.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
    if (type === 'summary') for (const suffix of ['_sum', '_count']) names.add(name + suffix);
  }
  return names;
}
