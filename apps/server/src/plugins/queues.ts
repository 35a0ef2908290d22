import fp from 'fastify-plugin';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { Gauge } from 'prom-client';
import type { DeliveryJobRef } from '@herald/db';
import { DELIVERY_QUEUE, DeliveryScheduler } from '@herald/queues';

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

    new Gauge({
      name: 'herald_delivery_queue_jobs',
      help: 'Jobs in the delivery queue by state',
      labelNames: ['state'] as const,
      registers: [app.metrics.registry],
      async collect() {
        try {
          const counts = await queue.getJobCounts('waiting', 'delayed', 'active', 'failed');
          for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
        } catch {
          // Redis down: leave the last values; /readyz says why.
        }
      },
    });
    // Counts a person has to act on, read from MySQL when Prometheus scrapes.
    const countGauge = (name: string, help: string, count: () => Promise<number>) =>
      new Gauge({
        name,
        help,
        registers: [app.metrics.registry],
        async collect() {
          try {
            this.set(await count());
          } catch {
            // MySQL down: keep the last value; /readyz says why.
          }
        },
      });
    countGauge('herald_messages_unresolved', 'Messages held after their checks ran out (onChecksExhausted: hold), waiting for a person', () => app.messages.countByStatus('unresolved'));
    countGauge('herald_deliveries_dead', 'Deliveries that are dead (waiting for a person to replay them)', () => app.deliveries.countByStatus('dead'));
    // The real backlogs, from the truth rather than from Redis: deliveries still to be made, and
    // transactions still open (prepared, neither confirmed nor cancelled yet).
    countGauge('herald_deliveries_pending', 'Deliveries not yet delivered or dead (in MySQL, whatever Redis holds)', () => app.deliveries.countByStatus('pending'));
    countGauge('herald_messages_prepared', 'Messages prepared and not yet confirmed or cancelled (open producer transactions)', () => app.messages.countByStatus('prepared'));

    app.addHook('onClose', async () => {
      await queue.close().catch(() => undefined);
      connection.disconnect();
    });
  },
  { name: 'herald-queues', dependencies: ['herald-metrics', 'herald-mysql'] },
);
