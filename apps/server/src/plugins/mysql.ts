import fp from 'fastify-plugin';
import { createDatabasePool, createDb, DeliveryRepository, MessageRepository, SubscriptionRepository, type OnWriteBatch } from '@herald/db';
import type { CheckPolicy } from '@herald/domain';
import type { Pool } from 'mysql2/promise';
import { loggable } from './errors';

declare module 'fastify' {
  interface FastifyInstance {
    mysql: Pool;
    messages: MessageRepository;
    subscriptions: SubscriptionRepository;
    deliveries: DeliveryRepository;
  }
}

export interface MysqlPluginOptions {
  url: string;
  poolSize: number;
  checkDefaults: CheckPolicy;
  checkIntervalCapMs: number;
}

/** The MySQL pool and the repositories on it. Creating the pool opens no connection yet. */
export const mysqlPlugin = fp<MysqlPluginOptions>(
  async (app, options) => {
    const pool = createDatabasePool({ url: options.url, connectionLimit: options.poolSize });
    const db = createDb(pool);
    // A batch that fell back is not an error (each write still got its own answer), but many of
    // them mean the group commit is not doing its job: counted, and logged at debug level.
    const onBatch: OnWriteBatch = (report) => {
      if (report.fallbacks.length === 0) return;
      for (const reason of report.fallbacks) app.metrics.writeBatchFallbacks.inc({ kind: report.kind, reason });
      app.log.debug({ kind: report.kind, size: report.size, fallbacks: report.fallbacks, ...(report.error !== undefined && { err: loggable(report.error) }) }, 'write batch fell back');
    };
    const messages = new MessageRepository(db, {
      defaults: options.checkDefaults,
      checkIntervalCapMs: options.checkIntervalCapMs,
      // Counted after the commit answered: a batch that committed but whose answer was lost
      // (the connection dropped during COMMIT) leaves its transitions uncounted.
      onTransition: (from, to) => app.metrics.transitions.inc({ from, to }),
      onBatch,
    });
    app.decorate('mysql', pool);
    app.decorate('messages', messages);
    app.decorate('subscriptions', new SubscriptionRepository(db));
    app.decorate('deliveries', new DeliveryRepository(db, undefined, { onBatch }));
    app.addHook('onClose', async () => {
      // A MySQL that stopped answering must not turn a clean shutdown into a failed one: every
      // 2xx was already committed, and the process exit drops the sockets anyway.
      try {
        await pool.end();
      } catch (error) {
        app.log.warn({ err: error }, 'closing the MySQL pool failed; its connections are dropped at exit');
      }
    });
  },
  { name: 'herald-mysql', dependencies: ['herald-metrics'] },
);
