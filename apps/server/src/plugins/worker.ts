import fp from 'fastify-plugin';
import { randomBytes } from 'node:crypto';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { Gauge } from 'prom-client';
import { RabbitPublisher, WebhookSender } from '@herald/delivery';
import {
  CHECK_QUEUE,
  CHECK_SWEEP_SCHEDULER,
  CheckProcessor,
  CheckSweeper,
  DELIVERY_QUEUE,
  DeliverProcessor,
  InlineDispatcher,
  Reconciler,
  type CheckJobData,
  type DeliveryJobData,
} from '@herald/queues';
import type { Config } from '../config';
import { boundedReading } from './metrics';
import { outageLog } from './outage-log';

declare module 'fastify' {
  interface FastifyInstance {
    /** Present in processes that deliver: opens (or checks) the RabbitMQ confirm channel. */
    rabbitPing?: () => Promise<void>;
  }
}

/** The ids a failed job's log line needs to be found with its message or delivery (jobs carry ids only). */
function jobIds(data: unknown): Record<string, unknown> {
  const d = (data ?? {}) as Partial<CheckJobData & DeliveryJobData>;
  return {
    ...(typeof d.messageId === 'string' && { messageId: d.messageId }),
    ...(typeof d.check === 'number' && { check: d.check }),
    ...(typeof d.deliveryId === 'number' && { deliveryId: d.deliveryId }),
  };
}

/** Waits for `work`, but no longer than `ms`; shutdown must not hang on a dead connection. */
async function settleWithin(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work.catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/**
 * The worker role: processes delivery jobs and runs the reconciler. Registered after the
 * infrastructure plugins, so on close it stops first: no new jobs, active ones finish, then
 * the pools it uses are closed.
 */
export const workerPlugin = fp<{ config: Config }>(
  async (app, { config }) => {
    const webhook = new WebhookSender({ allowPrivateUrls: config.allowPrivateUrls });
    const rabbit = new RabbitPublisher({ url: config.amqpUrl, confirmTimeoutMs: config.delivery.amqpConfirmTimeoutMs });
    app.decorate('rabbitPing', () => rabbit.ping());
    const m = app.metrics;
    const processor = new DeliverProcessor({
      deliveries: app.deliveries,
      subscriptions: app.subscriptions,
      webhook,
      rabbit,
      scheduler: app.scheduler,
      defaultTimeoutMs: config.delivery.webhookTimeoutMs,
      rabbitConfirmTimeoutMs: config.delivery.amqpConfirmTimeoutMs,
      onAttempt: (target, result) => {
        m.deliveryAttempts.inc({ target, outcome: result.ok ? 'success' : 'failure' });
        m.deliveryAttemptSeconds.observe({ target }, result.durationMs / 1000);
      },
      onFinished: (target, status) => m.deliveriesFinished.inc({ target, status }),
      log: app.log,
      tracer: app.tracing.tracer,
    });

    // Deliveries due at once skip the queue in the process that committed them (up to
    // HERALD_INLINE_DELIVERIES at once, beside the queue's worker); the queue stays for retries,
    // delays and overflow. An inline run costs a fraction of a queued job, so a fan-out to
    // several subscriptions is better kept inline than spilled to Redis.
    const inline = new InlineDispatcher(processor, { maxInFlight: config.delivery.inlineLimit, enqueue: (refs) => app.scheduler.enqueue(refs), log: app.log });
    app.scheduler.runInline((refs) => inline.take(refs));
    // Confirm and direct-publish batches lease the deliveries due now to this process as they
    // create them, so the inline run needs no claim transaction and no read of its context.
    app.messages.leaseFanOut({
      reserve: (wanted) => inline.reserve(wanted),
      release: (count) => inline.release(count),
      leaseMs: (subscription) => processor.leaseMs(subscription),
      run: ({ job, context }) => inline.runClaimed(job, context),
    });

    /** A BullMQ worker on a Redis connection of its own, logging errors and failed jobs. */
    const startWorker = <T>(queue: string, process: (job: Job<T>) => Promise<unknown>, concurrency: number, whatHappensOnFailure: string) => {
      // BullMQ workers block on Redis and must retry forever: maxRetriesPerRequest null.
      const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
      redis.on('error', () => undefined);
      const worker = new Worker<T>(queue, process, {
        connection: redis,
        prefix: config.queuePrefix,
        concurrency,
        // A killed worker's active jobs hold their ids until BullMQ sees them stalled; a shorter
        // lock (renewed every 5 s while alive) brings them back in ~10–15 s instead of ~30–60 s.
        lockDuration: 10_000,
        stalledInterval: 5_000,
      });
      // While Redis is down every reconnect attempt fails: one line per outage, not one per attempt.
      const outage = outageLog(app.log, 'worker error', { queue });
      worker.on('error', (err) => outage.failed(err));
      redis.on('ready', () => outage.recovered());
      worker.on('failed', (job, err) =>
        app.log.warn({ queue, jobId: job?.id, ...jobIds(job?.data), attemptsMade: job?.attemptsMade, err: { message: err.message } }, `job failed; ${whatHappensOnFailure}`),
      );
      return { worker, redis };
    };

    const { worker, redis: connection } = startWorker<DeliveryJobData>(
      DELIVERY_QUEUE,
      async (job) => processor.process({ ...job.data, runAt: new Date() }),
      config.delivery.concurrency,
      'BullMQ retries it, or, after its last try, the reconciler re-enqueues the delivery',
    );

    const reconciler = new Reconciler(app.deliveries, app.scheduler, {
      intervalMs: config.delivery.reconcileIntervalMs,
      graceMs: config.delivery.reconcileGraceMs,
      batchSize: 500,
      log: app.log,
    });
    reconciler.start();

    // Check-back: a BullMQ job scheduler fires one sweep per interval across all replicas; the
    // sweep claims due rounds in MySQL and enqueues one check job per message.
    const checkSecret = config.checks.secret ?? `whsec_${randomBytes(32).toString('base64')}`;
    if (!config.checks.secret) app.log.warn('HERALD_CHECK_SECRET is not set: check calls are signed with a random per-process secret that producers cannot verify');
    const checkQueue = new Queue(CHECK_QUEUE, { connection, prefix: config.queuePrefix });
    checkQueue.on('error', () => undefined);
    // The gauge reads the check queue on a connection of its own that fails fast (no offline
    // queue), not on the workers' (which wait for Redis forever): a scrape must answer while
    // Redis is down.
    const gaugeRedis = new Redis(config.redisUrl, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2_000 });
    gaugeRedis.on('error', () => undefined);
    gaugeRedis.connect().catch(() => undefined);
    const checkQueueReader = new Queue(CHECK_QUEUE, { connection: gaugeRedis, prefix: config.queuePrefix });
    checkQueueReader.on('error', () => undefined);
    const readCheckQueue = boundedReading(() => checkQueueReader.getJobCounts('waiting', 'delayed', 'active', 'failed'));
    new Gauge({
      name: 'herald_check_queue_jobs',
      help: 'Jobs in the check-back queue by state (check calls, and the one scheduled sweep)',
      labelNames: ['state'] as const,
      registers: [m.registry],
      async collect() {
        // Redis down or slow: the last values stay; /readyz says why.
        const counts = await readCheckQueue();
        if (counts) for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    const sweeper = new CheckSweeper(app.messages, checkQueue, { batchSize: 200, leaseMs: config.checks.timeoutMs + 5_000 });
    const checker = new CheckProcessor({
      messages: app.messages,
      sender: webhook,
      secret: checkSecret,
      timeoutMs: config.checks.timeoutMs,
      scheduleDeliveries: app.scheduleDeliveries,
      onCheck: (answer, durationMs) => {
        m.checks.inc({ answer });
        m.checkSeconds.observe(durationMs / 1000);
      },
      log: app.log,
      tracer: app.tracing.tracer,
    });
    const { worker: checkWorker, redis: checkConnection } = startWorker<CheckJobData | Record<string, never>>(
      CHECK_QUEUE,
      async (job) => {
        if (job.name === 'sweep') return sweeper.sweep();
        const data = job.data as CheckJobData;
        const outcome = await checker.process({ seq: BigInt(data.seq), messageId: data.messageId, check: data.check });
        return typeof outcome === 'string' ? outcome : outcome.kind;
      },
      config.checks.concurrency,
      'the round is claimed again when its lease ends',
    );
    // Upserting is idempotent, and repeated so a Redis that lost the scheduler gets it back.
    const upsertSweep = () =>
      checkQueue
        .upsertJobScheduler(CHECK_SWEEP_SCHEDULER, { every: config.checks.sweepIntervalMs }, { name: 'sweep', opts: { removeOnComplete: true, removeOnFail: true } })
        .catch((err: Error) => app.log.warn({ err: { message: err.message } }, 'could not schedule the check sweep; retrying'));
    void upsertSweep();
    const upsertTimer = setInterval(() => void upsertSweep(), Math.max(config.delivery.reconcileIntervalMs, 1_000));

    app.addHook('onClose', async () => {
      clearInterval(upsertTimer);
      await reconciler.stop();
      // Let active jobs finish (their results are recorded in MySQL), both workers at once within
      // one budget; with Redis unreachable there is nothing to finish with, so do not wait.
      const redisUp = connection.status === 'ready' && checkConnection.status === 'ready';
      app.scheduler.runInline(undefined);
      app.messages.leaseFanOut(undefined);
      // Inline runs need MySQL and the endpoint, not Redis: they always get the drain budget, so a
      // send under way is recorded rather than cut off and sent again after its lease.
      await Promise.all([
        settleWithin(Promise.all([worker.close(!redisUp), checkWorker.close(!redisUp)]), redisUp ? config.shutdownTimeoutMs - 2_000 : 1_000),
        settleWithin(inline.close(), config.shutdownTimeoutMs - 2_000),
      ]);
      connection.disconnect();
      checkConnection.disconnect();
      await settleWithin(Promise.all([checkQueue.close(), checkQueueReader.close()]), 1_000);
      gaugeRedis.disconnect();
      await Promise.all([webhook.close(), rabbit.close()]);
    });
  },
  { name: 'herald-worker', dependencies: ['herald-queues', 'herald-mysql', 'herald-metrics', 'herald-tracing'] },
);
