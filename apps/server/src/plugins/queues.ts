import fp from 'fastify-plugin';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { Gauge } from 'prom-client';
import type { LeaseSlots } from '@herald/db';
import { RabbitPublisher, WebhookSender } from '@herald/delivery';
import { DELIVERY_QUEUE, DeliverProcessor, DeliveryDispatcher, DeliveryQueue } from '@herald/queues';
import type { Config } from '../config';
import { boundedReading } from './metrics';

/** The MySQL backlog gauges count at most this many rows per scrape. */
export const GAUGE_COUNT_CAP = 100_000;

declare module 'fastify' {
  interface FastifyInstance {
    /** Where every committed delivery goes: run here, or queued (see `DeliveryDispatcher`). */
    dispatcher: DeliveryDispatcher;
    /** Present in processes that send deliveries (HERALD_ROLE worker or all). */
    senders?: { webhook: WebhookSender; rabbit: RabbitPublisher };
    /** Present in processes that send: opens (or checks) the RabbitMQ confirm channel. */
    rabbitPing?: () => Promise<void>;
  }
}

export interface QueuesPluginOptions {
  config: Config;
  /** In processes that send: the slots deliveries run in, shared with the repositories (app.ts). */
  slots?: LeaseSlots;
}

/**
 * The delivery queue and the dispatcher, with the senders in processes that send. The queue's
 * Redis connection fails fast (no offline queue), so a request whose commit succeeded is
 * answered promptly even while Redis is down.
 */
export const queuesPlugin = fp<QueuesPluginOptions>(
  async (app, { config, slots }) => {
    const connection = new Redis(config.redisUrl, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2_000 });
    connection.on('error', () => undefined); // readiness reports Redis; the reconnects are ioredis's
    connection.connect().catch(() => undefined);
    const queue = new Queue(DELIVERY_QUEUE, { connection, prefix: config.queuePrefix });
    queue.on('error', () => undefined);
    // While Redis is down an add waits for it at most 1 s: a committed confirm is answered then,
    // and the reconciler enqueues its deliveries once Redis is back.
    const deliveryQueue = new DeliveryQueue(queue, 1_000);

    let sender: ConstructorParameters<typeof DeliveryDispatcher>[0]['sender'];
    if (slots) {
      const webhook = new WebhookSender({ allowPrivateUrls: config.allowPrivateUrls });
      const rabbit = new RabbitPublisher({ url: config.amqpUrl, confirmTimeoutMs: config.delivery.amqpConfirmTimeoutMs });
      const m = app.metrics;
      const processor = new DeliverProcessor({
        claims: app.claims,
        attempts: app.attempts,
        subscriptions: app.subscriptions,
        webhook,
        rabbit,
        timeouts: { webhookTimeoutMs: config.delivery.webhookTimeoutMs, amqpConfirmTimeoutMs: config.delivery.amqpConfirmTimeoutMs },
        onAttempt: (target, result) => {
          m.deliveryAttempts.inc({ target, outcome: result.ok ? 'success' : 'failure' });
          m.deliveryAttemptSeconds.observe({ target }, result.durationMs / 1000);
        },
        onFinished: (target, status, tenant) => {
          m.deliveriesFinished.inc({ target, status });
          m.tenants.deliveriesFinished.inc(tenant, status);
        },
        log: app.log,
        tracer: app.tracing.tracer,
      });
      sender = { processor, slots };
      app.decorate('senders', { webhook, rabbit });
      app.decorate('rabbitPing', () => rabbit.ping());
    }
    const dispatcher = new DeliveryDispatcher({ queue: deliveryQueue, sender, log: app.log, onEnqueueFailure: (n) => app.metrics.enqueueFailures.inc(n) });
    app.decorate('dispatcher', dispatcher);

    const readQueue = boundedReading(() => deliveryQueue.counts());
    new Gauge({
      name: 'herald_delivery_queue_jobs',
      help: 'Jobs in the delivery queue by state',
      labelNames: ['state'] as const,
      registers: [app.metrics.registry],
      async collect() {
        // Redis down or slow: the last values stay; /readyz says why.
        const counts = await readQueue();
        if (counts) for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    // Counts a person has to act on, read from MySQL when Prometheus scrapes; capped, so a huge
    // backlog costs a bounded index range per scrape.
    const countGauge = (name: string, help: string, count: (cap: number) => Promise<number>) => {
      const read = boundedReading(() => count(GAUGE_COUNT_CAP));
      return new Gauge({
        name,
        help: `${help}; counted up to ${GAUGE_COUNT_CAP} (the value stops there)`,
        registers: [app.metrics.registry],
        async collect() {
          // MySQL down or slow: the last value stays; /readyz says why.
          const n = await read();
          if (n !== undefined) this.set(n);
        },
      });
    };
    countGauge('herald_messages_unresolved', 'Messages held after their checks ran out (onChecksExhausted: hold), waiting for a person', (cap) => app.messages.countByStatus('unresolved', cap));
    countGauge('herald_deliveries_dead', 'Deliveries that are dead (waiting for a person to replay them)', (cap) => app.deliveries.countByStatus('dead', cap));
    countGauge('herald_deliveries_pending', 'Deliveries not yet delivered or dead (in MySQL, whatever Redis holds)', (cap) => app.deliveries.countByStatus('pending', cap));
    countGauge('herald_messages_prepared', 'Messages prepared and not yet confirmed or cancelled (open producer transactions)', (cap) => app.messages.countByStatus('prepared', cap));

    app.addHook('onClose', async () => {
      // The worker plugin, closed before this one, drained the dispatcher within its budget.
      await queue.close().catch(() => undefined);
      connection.disconnect();
      await Promise.all([app.senders?.webhook.close(), app.senders?.rabbit.close()]);
    });
  },
  { name: 'herald-queues', dependencies: ['herald-metrics', 'herald-mysql', 'herald-tracing'] },
);
