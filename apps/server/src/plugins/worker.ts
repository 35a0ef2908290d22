import fp from 'fastify-plugin';
import { randomBytes } from 'node:crypto';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { Gauge } from 'prom-client';
import { CHECK_QUEUE, CHECK_SWEEP_SCHEDULER, CheckProcessor, CheckSweeper, DELIVERY_QUEUE, Reconciler, type CheckJobData, type DeliveryJobData } from '@herald/queues';
import type { Config } from '../config';
import { boundedReading } from './metrics';
import { outageLog } from './outage-log';
import { startPurger } from './purge';

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
 * The worker role: BullMQ workers hand delivery jobs to the dispatcher and run check calls; the
 * reconciler and the check sweeper rebuild the schedule from MySQL. Registered after the
 * infrastructure plugins, so on close it stops first: no new jobs, active ones and inline runs
 * finish, then the pools it uses are closed.
 */
/** `checkSecretFor`: a tenant's own check-back secret, from its keys; undefined falls back to HERALD_CHECK_SECRET. */
export const workerPlugin = fp<{ config: Config; checkSecretFor?: (tenant: string) => string | undefined }>(
  async (app, options) => {
    const { config } = options;
    const { dispatcher, senders, metrics: m } = app;
    if (!senders) throw new Error('the worker needs the senders: register the queues plugin with slots');
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
      async (job) => (await dispatcher.runQueued({ ...job.data, runAt: new Date() })).kind,
      config.delivery.concurrency,
      'BullMQ retries it, or, after its last try, the reconciler re-enqueues the delivery',
    );

    const reconciler = new Reconciler(app.deliveries, dispatcher, {
      intervalMs: config.delivery.reconcileIntervalMs,
      graceMs: config.delivery.reconcileGraceMs,
      batchSize: 500,
      log: app.log,
    });
    reconciler.start();
    const purger = startPurger(app, config);

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
    const sweeper = new CheckSweeper(app.checks, checkQueue, { batchSize: 200, leaseMs: config.checks.timeoutMs + 5_000 });
    const checker = new CheckProcessor({
      messages: app.messages,
      checks: app.checks,
      sender: senders.webhook,
      secretFor: (tenant) => options.checkSecretFor?.(tenant) ?? checkSecret,
      timeoutMs: config.checks.timeoutMs,
      dispatcher,
      onCheck: (answer, durationMs, tenant) => {
        m.checks.inc({ answer });
        m.tenants.checks.inc(tenant, answer);
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
      await Promise.all([reconciler.stop(), purger.stop()]);
      // Let active jobs finish (their results are recorded in MySQL), both workers at once within
      // one budget; with Redis unreachable there is nothing to finish with, so do not wait.
      const redisUp = connection.status === 'ready' && checkConnection.status === 'ready';
      // Inline runs need MySQL and the endpoint, not Redis: they always get the drain budget, so a
      // send under way is recorded rather than cut off and sent again after its lease.
      await Promise.all([
        settleWithin(Promise.all([worker.close(!redisUp), checkWorker.close(!redisUp)]), redisUp ? config.shutdownTimeoutMs - 2_000 : 1_000),
        settleWithin(dispatcher.close(), config.shutdownTimeoutMs - 2_000),
      ]);
      connection.disconnect();
      checkConnection.disconnect();
      await settleWithin(Promise.all([checkQueue.close(), checkQueueReader.close()]), 1_000);
      gaugeRedis.disconnect();
    });
  },
  { name: 'herald-worker', dependencies: ['herald-queues', 'herald-mysql', 'herald-metrics', 'herald-tracing'] },
);
