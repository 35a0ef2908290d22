import fp from 'fastify-plugin';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { HERALD_VERSION } from '../version';

/** How long one gauge may take to read its value when Prometheus scrapes. */
export const GAUGE_READ_DEADLINE_MS = 1_000;

/**
 * Wraps an async gauge reading so a scrape never waits on a dead dependency: it answers within
 * `deadlineMs` (undefined when the reading did not finish in time or failed, so the gauge keeps
 * its last value), and while one reading is still out no second one is started, so a hung Redis
 * or MySQL does not collect one more command per scrape.
 */
export function boundedReading<T>(read: () => Promise<T>, deadlineMs = GAUGE_READ_DEADLINE_MS): () => Promise<T | undefined> {
  let inFlight: Promise<T | undefined> | undefined;
  return async () => {
    inFlight ??= read()
      .catch(() => undefined)
      .finally(() => (inFlight = undefined));
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), deadlineMs)));
    try {
      return await Promise.race([inFlight, deadline]);
    } finally {
      clearTimeout(timer);
    }
  };
}

/**
 * A counter by tenant and one more label of known values. Each tenant's series are made once
 * (all its values at 0, so a dashboard sees a tenant before its first event) and kept, so an
 * increment is two Map lookups rather than prom-client's hashing of a label object.
 */
export class TenantCounter<L extends string> {
  private readonly children = new Map<string, Map<string, Counter.Internal>>();

  constructor(
    private readonly counter: Counter<'tenant' | L>,
    private readonly label: L,
    private readonly values: readonly string[],
  ) {}

  /** Makes the series of these tenants now, at 0. */
  prepare(tenants: Iterable<string>): void {
    for (const tenant of tenants) this.of(tenant);
  }

  inc(tenant: string, value: string, n = 1): void {
    const byValue = this.of(tenant);
    let child = byValue.get(value);
    // A value outside the known list still counts (it is a bug to fix, not a sample to drop).
    if (!child) byValue.set(value, (child = this.child(tenant, value)));
    child.inc(n);
  }

  private of(tenant: string): Map<string, Counter.Internal> {
    let byValue = this.children.get(tenant);
    if (!byValue) {
      byValue = new Map(this.values.map((v) => [v, this.child(tenant, v)]));
      for (const child of byValue.values()) child.inc(0);
      this.children.set(tenant, byValue);
    }
    return byValue;
  }

  private child(tenant: string, value: string): Counter.Internal {
    return this.counter.labels({ tenant, [this.label]: value } as Record<'tenant' | L, string>);
  }
}

/** The per-tenant counters; their tenants come from the configured keys, a bounded set. */
export interface TenantMetrics {
  /** Messages that left `prepared`: confirmed or cancelled (by the producer, an operator or a check answer), or held unresolved. */
  decisions: TenantCounter<'to'>;
  /** Check-back calls by the answer they came to. */
  checks: TenantCounter<'answer'>;
  /** Deliveries that reached delivered or dead. */
  deliveriesFinished: TenantCounter<'status'>;
  /** Makes every per-tenant series of these tenants now, at 0. */
  prepare(tenants: Iterable<string>): void;
}

export interface HeraldMetrics {
  registry: Registry;
  transitions: Counter<'from' | 'to'>;
  storedByTenant: Counter<'tenant' | 'status'>;
  tenants: TenantMetrics;
  writeBatchFallbacks: Counter<'kind' | 'reason'>;
  deliveryAttempts: Counter<'target' | 'outcome'>;
  deliveryAttemptSeconds: Histogram<'target'>;
  deliveriesFinished: Counter<'target' | 'status'>;
  checks: Counter<'answer'>;
  checkSeconds: Histogram;
  enqueueFailures: Counter;
  traceExportFailures: Counter;
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: HeraldMetrics;
  }
}

/**
 * A registry per app instance (not prom-client's global one), so tests can build many apps.
 *
 * Labels are bounded sets only: method, route pattern, status code, state, target type, answer,
 * tenant (tenants come from the configured keys). Never a topic, message id, subscription id or URL: producers choose topics freely, so a
 * per-topic counter (say, messages prepared by topic) would grow without bound and take
 * Prometheus down with it. Per-topic questions are answered by the API (`GET /v1/messages?topic=`)
 * and the traces (each span carries the message id).
 */
export const metricsPlugin = fp(
  async (app) => {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    // Always 1; the label tells dashboards which release each process runs during a rollout.
    new Gauge({ name: 'herald_build_info', help: 'The Herald release this process runs (value always 1)', labelNames: ['version'] as const, registers: [registry] }).set({ version: HERALD_VERSION }, 1);
    const requests = new Counter({
      name: 'herald_http_requests_total',
      help: 'HTTP requests by method, route and status code',
      labelNames: ['method', 'route', 'status_code'] as const,
      registers: [registry],
    });
    const latency = new Histogram({
      name: 'herald_http_request_duration_seconds',
      help: 'HTTP request latency by method and route',
      labelNames: ['method', 'route'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    });
    const transitions = new Counter({
      name: 'herald_message_transitions_total',
      // The API and check-back decisions. The roll-up of a confirmed message to delivered or failed
      // happens in the delivery transaction and is not counted here: see
      // herald_deliveries_finished_total and herald_deliveries_dead.
      help: 'Committed message state changes made by prepare, confirm, cancel and check answers; from="new" counts messages stored',
      labelNames: ['from', 'to'] as const,
      registers: [registry],
    });
    // Tenants come from the configured keys, so this label's values are bounded.
    const storedByTenant = new Counter({
      name: 'herald_messages_stored_total',
      help: 'Messages stored through the API by tenant, as prepared or (direct publish) confirmed',
      labelNames: ['tenant', 'status'] as const,
      registers: [registry],
    });
    const deliveryAttempts = new Counter({
      name: 'herald_delivery_attempts_total',
      help: 'Delivery attempts by target type and outcome (success or failure)',
      labelNames: ['target', 'outcome'] as const,
      registers: [registry],
    });
    const deliveryAttemptSeconds = new Histogram({
      name: 'herald_delivery_attempt_duration_seconds',
      help: 'Time one delivery attempt took, by target type',
      labelNames: ['target'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
    const deliveriesFinished = new Counter({
      name: 'herald_deliveries_finished_total',
      help: 'Deliveries that reached delivered or dead, by target type',
      labelNames: ['target', 'status'] as const,
      registers: [registry],
    });
    const checks = new Counter({
      name: 'herald_checks_total',
      help: 'Check-back calls by the answer they came to (anything but a valid 200 counts as unknown)',
      labelNames: ['answer'] as const,
      registers: [registry],
    });
    const checkSeconds = new Histogram({
      name: 'herald_check_duration_seconds',
      help: 'Time one check-back call took',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
    const enqueueFailures = new Counter({
      name: 'herald_delivery_enqueue_failures_total',
      help: 'Delivery jobs committed in MySQL that Redis did not take after the commit (the reconciler enqueues them later)',
      registers: [registry],
    });
    // Registered with tracing off too (it stays 0), so dashboards and alerts find the series either way.
    const traceExportFailures = new Counter({
      name: 'herald_trace_export_failures_total',
      help: 'Batches of spans the OTLP exporter could not send (those spans are lost)',
      registers: [registry],
    });
    const writeBatchFallbacks = new Counter({
      name: 'herald_write_batch_fallbacks_total',
      help: 'Group-commit batches (kind: prepare, direct, confirm, attempt, claim) in which some writes left the batch path, by reason: duplicate (an id already stored or repeated; answered from one read), error (a statement failed: rows written one by one, direct publishes each on its own), skipped-locked (rows another transaction held, written on their own), failed (the batch transaction failed, each write made on its own)',
      labelNames: ['kind', 'reason'] as const,
      registers: [registry],
    });
    // Per tenant, what an on-call person asks first about one team: are its transactions being
    // decided, what do its check endpoints answer, are its deliveries dying.
    const tenantCounter = <L extends string>(name: string, help: string, label: L, values: readonly string[]) =>
      new TenantCounter(new Counter({ name, help, labelNames: ['tenant', label] as const, registers: [registry] }), label, values);
    const decisions = tenantCounter('herald_tenant_decisions_total', 'Messages of a tenant that left prepared, by the state they reached: confirmed or cancelled (by the producer, an operator or a check answer), or unresolved (checks ran out under hold)', 'to', ['confirmed', 'cancelled', 'unresolved']);
    const tenantChecks = tenantCounter('herald_tenant_checks_total', 'Check-back calls to a tenant\'s check URLs by the answer they came to (anything but a valid 200 counts as unknown)', 'answer', ['commit', 'rollback', 'unknown']);
    const tenantDeliveries = tenantCounter('herald_tenant_deliveries_finished_total', 'Deliveries of a tenant\'s messages that reached delivered or dead', 'status', ['delivered', 'dead']);
    const tenants: TenantMetrics = {
      decisions,
      checks: tenantChecks,
      deliveriesFinished: tenantDeliveries,
      prepare: (names) => {
        const list = [...names];
        for (const counter of [decisions, tenantChecks, tenantDeliveries]) counter.prepare(list);
      },
    };
    app.decorate('metrics', { registry, transitions, storedByTenant, tenants, writeBatchFallbacks, deliveryAttempts, deliveryAttemptSeconds, deliveriesFinished, checks, checkSeconds, enqueueFailures, traceExportFailures });

    app.addHook('onResponse', async (request, reply) => {
      // The route pattern, never the raw URL: ids in paths would explode the label set.
      const route = request.routeOptions.url ?? 'unmatched';
      requests.inc({ method: request.method, route, status_code: String(reply.statusCode) });
      latency.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    });
  },
  { name: 'herald-metrics' },
);
