import fp from 'fastify-plugin';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { Gauge } from 'prom-client';
import type { DeliveryJobRef } from '@herald/db';
import { DELIVERY_QUEUE, DeliveryScheduler } from '@herald/queues';
import { boundedReading } from './metrics';

/** The MySQL backlog gauges count at most this many rows per scrape. */
export const GAUGE_COUNT_CAP = 100_000;

declare module 'fastify' {
  interface FastifyInstance {
    deliveryQueue: Queue;
    scheduler: DeliveryScheduler;
    /** Schedules jobs after a commit; failure is logged, never the caller's problem (see the reconciler). */
    scheduleDeliveries: (refs: readonly DeliveryJobRef[], messageId: string) => Promise<void>;
  }
}

export interface QueuesPluginOptions {
  redisUrl: string;
  prefix: string;
}

/**
 * The producer side of the delivery queue. Its Redis connection fails fast (no offline queue),
 * so a request whose commit succeeded is answered promptly even while Redis is down.
 */
export const queuesPlugin = fp<QueuesPluginOptions>(
  async (app, options) => {
    const connection = new Redis(options.redisUrl, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2_000 });
    connection.on('error', () => undefined); // readiness reports Redis; the reconnects are ioredis's
    connection.connect().catch(() => undefined);
    const queue = new Queue(DELIVERY_QUEUE, { connection, prefix: options.prefix });
    queue.on('error', () => undefined);
    // While Redis is down an enqueue waits for it at most 1 s: a committed confirm is answered
    // then, and the reconciler enqueues its deliveries once Redis is back.
    const scheduler = new DeliveryScheduler(queue, 1_000);
    app.decorate('deliveryQueue', queue);
    app.decorate('scheduler', scheduler);
    app.decorate('scheduleDeliveries', async (refs: readonly DeliveryJobRef[], messageId: string) => {
      try {
        await scheduler.schedule(refs);
      } catch (err) {
        app.metrics.enqueueFailures.inc();
        app.log.warn({ messageId, deliveries: refs.length, err: { message: (err as Error).message } }, 'deliveries committed but not enqueued; the reconciler will enqueue them');
      }
    });

    const readQueue = boundedReading(() => queue.getJobCounts('waiting', 'delayed', 'active', 'failed'));
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
    // Counts a person has to act on, read from MySQL when Prometheus scrapes. Capped, so a huge
    // backlog costs a bounded index range per scrape rather than a full count.
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
    // The real backlogs, from the truth rather than from Redis: deliveries still to be made, and
    // transactions still open (prepared, neither confirmed nor cancelled yet).
    countGauge('herald_deliveries_pending', 'Deliveries not yet delivered or dead (in MySQL, whatever Redis holds)', (cap) => app.deliveries.countByStatus('pending', cap));
    countGauge('herald_messages_prepared', 'Messages prepared and not yet confirmed or cancelled (open producer transactions)', (cap) => app.messages.countByStatus('prepared', cap));

    app.addHook('onClose', async () => {
      await queue.close().catch(() => undefined);
      connection.disconnect();
    });
  },
  { name: 'herald-queues', dependencies: ['herald-metrics', 'herald-mysql'] },
);
