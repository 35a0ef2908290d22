import type { FastifyInstance } from 'fastify';
import { Counter, Gauge } from 'prom-client';
import { PURGEABLE_STATUSES, type PurgeCounts, type PurgeRepository } from '@herald/db';
import { Purger, type Retention } from '@herald/queues';
import type { Config } from '../config';
import { boundedReading } from './metrics';

const TABLES: Record<keyof PurgeCounts, string> = { messages: 'messages', deliveries: 'deliveries', deliveryAttempts: 'delivery_attempts', checkAttempts: 'check_attempts' };

export function retentionOf(config: Config): Retention {
  return { delivered: config.retention.delivered, cancelled: config.retention.cancelled, failed: config.retention.failed };
}

/**
 * How far behind the purger is: the longest any message has waited past its retention, in ms
 * (0 when nothing is due). One index probe per status with a retention.
 */
export async function purgeLagMs(purges: Pick<PurgeRepository, 'oldestIn'>, retention: Retention, now = Date.now()): Promise<number> {
  let lag = 0;
  for (const status of PURGEABLE_STATUSES) {
    if (retention[status] <= 0) continue;
    const oldest = await purges.oldestIn(status);
    if (oldest) lag = Math.max(lag, now - oldest.getTime() - retention[status]);
  }
  return lag;
}

/** Starts the worker's purger with its metrics; returns what stops it. */
export function startPurger(app: FastifyInstance, config: Config): { stop: () => Promise<void> } {
  const registers = [app.metrics.registry];
  const retention = retentionOf(config);
  const purged = new Counter({ name: 'herald_purged_rows_total', help: 'Rows the purger removed once their message’s retention ran out, by table', labelNames: ['table'] as const, registers });
  const lastRun = new Gauge({ name: 'herald_purge_last_run_timestamp_seconds', help: 'When this process’s purger last finished a run (unix seconds; 0: not yet)', registers });
  const readLag = boundedReading(() => purgeLagMs(app.purges, retention));
  new Gauge({
    name: 'herald_purge_lag_seconds',
    help: 'How long the oldest purgeable message has waited past its retention (0: the purger keeps up)',
    registers,
    async collect() {
      const lag = await readLag();
      if (lag !== undefined) this.set(lag / 1000);
    },
  });
  for (const table of Object.values(TABLES)) purged.inc({ table }, 0);
  const purger = new Purger(app.purges, {
    intervalMs: config.retention.purgeIntervalMs,
    maxPerSecond: config.retention.purgeMaxPerSecond,
    retention,
    log: app.log,
    onPurged: (counts) => {
      for (const [key, table] of Object.entries(TABLES) as Array<[keyof PurgeCounts, string]>) if (counts[key] > 0) purged.inc({ table }, counts[key]);
    },
    onRun: (at) => lastRun.set(at.getTime() / 1000),
  });
  purger.start();
  return { stop: () => purger.stop() };
}
