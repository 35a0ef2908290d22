import { describe, expect, it } from 'vitest';
import { allPanels, expressions, loadDashboard, metricNames } from './dashboard';

// Whether these names are really exposed is checked against a running server in image.test.ts.
const REQUIRED = [
  'herald_http_requests_total',
  'herald_http_request_duration_seconds_bucket',
  'herald_message_transitions_total',
  'herald_delivery_attempts_total',
  'herald_delivery_attempt_duration_seconds_bucket',
  'herald_deliveries_finished_total',
  'herald_checks_total',
  'herald_check_duration_seconds_bucket',
  'herald_delivery_queue_jobs',
  'herald_messages_unresolved',
  'herald_deliveries_dead',
  'herald_deliveries_pending',
  'herald_messages_prepared',
  'herald_delivery_enqueue_failures_total',
  'herald_check_queue_jobs',
  'herald_trace_export_failures_total',
  'herald_purge_lag_seconds',
  'herald_purged_rows_total',
  'herald_purge_last_run_timestamp_seconds',
  // Per tenant (the label set is the configured tenants).
  'herald_messages_stored_total',
  'herald_tenant_decisions_total',
  'herald_tenant_checks_total',
  'herald_tenant_deliveries_finished_total',
];

describe('deploy/grafana/herald-dashboard.json', () => {
  const dashboard = loadDashboard();

  it('is an importable dashboard with a Prometheus data source variable', () => {
    expect(dashboard.uid).toBe('herald-overview');
    expect(dashboard.templating?.list.map((v) => v.name)).toContain('datasource');
    const ids = allPanels(dashboard).map((p) => (p as { id?: number }).id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of allPanels(dashboard).filter((x) => x.type !== 'row')) expect(p.targets?.length, p.title).toBeGreaterThan(0);
  });

  it('charts every Herald metric an operator needs', () => {
    const used = new Set(expressions(dashboard).flatMap(metricNames));
    for (const name of REQUIRED) expect(used, name).toContain(name);
  });

  it('reads metric names out of PromQL, and only them', () => {
    expect(metricNames('histogram_quantile(0.99, sum by (le, target) (rate(herald_delivery_attempt_duration_seconds_bucket{job=~"$job"}[$__rate_interval])))')).toEqual(['herald_delivery_attempt_duration_seconds_bucket']);
    expect(metricNames('sum(rate(a_total{x="5.."}[5m])) / clamp_min(sum(rate(b_total[5m])), 1e-9)').sort()).toEqual(['a_total', 'b_total']);
    expect(metricNames('label_values(herald_http_requests_total, job)')).toEqual(['herald_http_requests_total']);
  });
});
