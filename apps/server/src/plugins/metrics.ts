import fp from 'fastify-plugin';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

export interface HeraldMetrics {
  registry: Registry;
  transitions: Counter<'from' | 'to'>;
  deliveryAttempts: Counter<'target' | 'outcome'>;
  deliveryAttemptSeconds: Histogram<'target'>;
  deliveriesFinished: Counter<'target' | 'status'>;
  checks: Counter<'answer'>;
  checkSeconds: Histogram;
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: HeraldMetrics;
  }
}

/** A registry per app instance (not prom-client's global one), so tests can build many apps. */
export const metricsPlugin = fp(
  async (app) => {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
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
      help: 'Committed message state changes; from="new" counts messages stored',
      labelNames: ['from', 'to'] as const,
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
    app.decorate('metrics', { registry, transitions, deliveryAttempts, deliveryAttemptSeconds, deliveriesFinished, checks, checkSeconds });

    app.addHook('onResponse', async (request, reply) => {
      // The route pattern, never the raw URL: ids in paths would explode the label set.
      const route = request.routeOptions.url ?? 'unmatched';
      requests.inc({ method: request.method, route, status_code: String(reply.statusCode) });
      latency.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    });
  },
  { name: 'herald-metrics' },
);
