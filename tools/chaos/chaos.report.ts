import type { FaultCounts } from './webhook.endpoint';
import type { FaultRecord } from './fault.injector';
import type { InvariantReport } from './invariant.checker';
import type { ApiTally } from './herald-api.client';

export interface ChaosResult {
  mode: 'full' | 'reduced' | 'custom';
  startedAt: string;
  durationS: number;
  replicas: number;
  faults: Array<{ fault: string; injected: number; downS: string; recoveryS: string; details: string[] }>;
  invariants: Omit<InvariantReport, 'lost' | 'phantom' | 'impossible'> & { lost: number; phantom: number; impossible: number };
  findings: { lost: unknown[]; phantom: unknown[]; impossible: unknown[] };
  api: ApiTally;
  /** Per tenant: check calls that verified with the tenant's own check secret. */
  checkCalls: Record<string, number>;
  /** The ordered subscription: keys seen, its deliveries, the longest key, and per-key order violations. */
  ordering: { keys: number; orderedDeliveries: number; longestKey: number; violations: number };
  orderViolations: unknown[];
  /** Error-level lines the replicas logged (first few per replica). */
  serverErrors: string[];
  convergedS: number;
  passed: boolean;
}

const s = (ms: number) => (ms / 1000).toFixed(1);
const stats = (values: number[]) => (values.length ? `${s(values.reduce((a, b) => a + b, 0) / values.length)} avg / ${s(Math.max(...values))} max` : '–');

/** Folds the fault log and the endpoints' counters into one row per fault type. */
export function faultRows(records: FaultRecord[], counts: FaultCounts): ChaosResult['faults'] {
  const rows: ChaosResult['faults'] = [];
  const kinds = [...new Set(records.map((r) => r.fault))];
  for (const fault of kinds) {
    const mine = records.filter((r) => r.fault === fault);
    const recovered = mine.filter((r) => r.recoveryMs >= 0);
    rows.push({
      fault,
      injected: mine.length,
      downS: stats(mine.map((r) => r.downMs).filter((ms) => ms > 0)),
      recoveryS: recovered.length === mine.length ? stats(recovered.map((r) => r.recoveryMs)) : `${mine.length - recovered.length} did not recover`,
      details: mine.map((r) => r.detail).filter(Boolean),
    });
  }
  rows.push({ fault: 'webhook slow (0.2–1 s answers)', injected: counts.slow, downS: '–', recoveryS: '–', details: [] });
  rows.push({ fault: 'webhook timeout (no answer)', injected: counts.timeout, downS: '–', recoveryS: `${stats(counts.retryLatencies.timeout)} to the 2xx retry`, details: [] });
  rows.push({ fault: 'webhook connection reset', injected: counts.reset, downS: '–', recoveryS: `${stats(counts.retryLatencies.reset)} to the 2xx retry`, details: [] });
  rows.push({ fault: 'webhook flap (refusing connections)', injected: counts.flapDown, downS: '1.5–3 each', recoveryS: `${stats(counts.flapRecoveries)} to the first 2xx`, details: [] });
  return rows;
}

/** The table printed at the end of a run (and reproduced in docs/performance.md). */
export function renderTable(result: ChaosResult): string {
  const lines: string[] = [];
  const w = Math.max(...result.faults.map((f) => f.fault.length), 28);
  lines.push(`Herald chaos run (${result.mode}): ${result.replicas} replicas, ${result.durationS.toFixed(0)} s, converged ${result.convergedS.toFixed(1)} s after the load`);
  lines.push('');
  lines.push(`${'fault'.padEnd(w)}  ${'injected'.padStart(8)}  ${'down (s)'.padEnd(20)}  time to recover (s)`);
  lines.push(`${'-'.repeat(w)}  ${'-'.repeat(8)}  ${'-'.repeat(20)}  ${'-'.repeat(34)}`);
  for (const f of result.faults) lines.push(`${f.fault.padEnd(w)}  ${String(f.injected).padStart(8)}  ${f.downS.padEnd(20)}  ${f.recoveryS}`);
  lines.push('');
  const inv = result.invariants;
  const row = (label: string, value: string | number) => lines.push(`${label.padEnd(w)}  ${String(value).padStart(8)}`);
  row('messages', inv.messages);
  lines.push(`${''.padEnd(w)}  ${Object.entries(inv.byKind).map(([k, n]) => `${k} ${n}`).join(', ')}`);
  row('  committed by the producer', inv.committed);
  row('  rolled back / never acknowledged', inv.rolledBack);
  row('deliveries due (message × sub)', inv.expectedDeliveries);
  row('  received at least once', inv.delivered);
  row('  dead, visible in the API', inv.deadVisible);
  row('duplicates (extra receipts)', inv.duplicates);
  row('LOST', inv.lost);
  row('PHANTOM', inv.phantom);
  row('IMPOSSIBLE STATE', inv.impossible);
  row(`ordered deliveries (${result.ordering.keys} keys, longest ${result.ordering.longestKey})`, result.ordering.orderedDeliveries);
  row('ORDERING VIOLATIONS', result.ordering.violations);
  lines.push('');
  // Each tenant's share, counted by the delivery id a consumer de-duplicates by.
  const tenants = Object.keys(inv.byTenant).sort();
  const col = (v: string | number) => String(v).padStart(12);
  const perTenant = (label: string, value: (t: string) => string | number) => lines.push(`${label.padEnd(w)}  ${tenants.map((t) => col(value(t))).join('')}`);
  perTenant('by tenant', (t) => t);
  lines.push(`${'-'.repeat(w)}  ${tenants.map(() => ` ${'-'.repeat(11)}`).join('')}`);
  const totals = (t: string) => inv.byTenant[t]!;
  perTenant('messages', (t) => totals(t).messages);
  perTenant('  committed by the producer', (t) => totals(t).committed);
  perTenant('  rolled back / never acknowledged', (t) => totals(t).rolledBack);
  perTenant('deliveries due (message × sub)', (t) => totals(t).expectedDeliveries);
  perTenant('  received at least once', (t) => totals(t).delivered);
  perTenant('  dead, visible in the API', (t) => totals(t).deadVisible);
  perTenant('duplicates (extra receipts)', (t) => totals(t).duplicates);
  perTenant('check calls (tenant’s secret)', (t) => result.checkCalls[t] ?? 0);
  perTenant('LOST', (t) => totals(t).lost);
  perTenant('PHANTOM', (t) => totals(t).phantom);
  perTenant('IMPOSSIBLE STATE', (t) => totals(t).impossible);
  row('ids held by both tenants', inv.sharedIds);
  lines.push('');
  const statuses = Object.entries(result.api.byStatus).sort().map(([k, n]) => `${k}×${n}`).join(' ');
  lines.push(`API: ${result.api.requests} requests (${statuses}), ${result.api.networkErrors} connection errors, ${result.api.retries} retries, ${result.api.gaveUp} given up`);
  for (const u of result.api.unexpected) lines.push(`  unexpected ${u.status} on ${u.request} at ${u.at}: ${u.message}`);
  if (result.serverErrors.length) lines.push(`replicas logged ${result.serverErrors.length} error-level line(s); see serverErrors in the JSON`);
  lines.push(result.passed ? 'PASS: nothing lost, nothing phantom, no impossible state, every key in order' : 'FAIL');
  return lines.join('\n');
}
